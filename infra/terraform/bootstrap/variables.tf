# Set per environment in envs/ENV.tfvars; the values shared with infra/terraform
# (project, region, bigquery_location, bucket) must be the same in both.
variable "project" {
  description = "Google Cloud project of this environment (one project per environment)."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project))
    error_message = "project must be a Google Cloud project id: set it in envs/ENV.tfvars."
  }
}

variable "environment" {
  description = "dev, staging or prod: a label on every resource and the GitHub Environment trusted."
  type        = string
  validation {
    condition     = contains(["dev", "staging", "prod"], var.environment)
    error_message = "environment must be dev, staging or prod."
  }
}

variable "region" {
  description = "Region of the bucket and the image repository."
  type        = string
  default     = "europe-west1"
}

variable "bigquery_location" {
  description = "Location of the BigQuery datasets (EYP_WAREHOUSE__BIGQUERY__LOCATION)."
  type        = string
  default     = "EU"
}

variable "bucket" {
  description = "Raw lake bucket (EYP_LAKE__GCS__BUCKET). Bucket names are global: each environment sets its own."
  type        = string
  validation {
    # "-access-logs" is appended for the log bucket, within the 63 characters allowed.
    condition     = can(regex("^[a-z0-9][a-z0-9_-]{1,49}[a-z0-9]$", var.bucket))
    error_message = "bucket must be a bucket name of at most 51 characters: set it in envs/ENV.tfvars."
  }
}

variable "raw_dataset" {
  description = "Dataset of the raw tables (EYP_WAREHOUSE__RAW_DATASET)."
  type        = string
  default     = "bq_raw"
}

variable "analytics_dataset" {
  description = "Dataset of the marts (EYP_WAREHOUSE__ANALYTICS_DATASET)."
  type        = string
  default     = "bq_analytics"
}

variable "ci_dataset" {
  description = "Dataset of the deploy workflow's dbt check (EYP_DBT_CI_DATASET of scripts/deploy.sh)."
  type        = string
  default     = "bq_ci"
}

variable "coldline_after_days" {
  description = "Age in days after which raw objects move to Coldline storage."
  type        = number
  default     = 90
}

variable "noncurrent_versions_kept_days" {
  description = "Days a replaced or deleted object version is kept (versioning is on)."
  type        = number
  default     = 365
}

variable "github_repository" {
  description = "OWNER/NAME of the GitHub repository whose Actions may deploy this environment."
  type        = string
  validation {
    condition     = can(regex("^[A-Za-z0-9-]+/[A-Za-z0-9._-]+$", var.github_repository)) && !startswith(var.github_repository, "REPLACE-ME")
    error_message = "github_repository must be OWNER/NAME: set it in envs/ENV.tfvars."
  }
}

variable "state_bucket" {
  description = "Bucket of the Terraform state (created by hand, see README); the same as in envs/ENV.backend.hcl."
  type        = string
  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9_-]{1,61}[a-z0-9]$", var.state_bucket))
    error_message = "state_bucket must be a bucket name: set it in envs/ENV.tfvars."
  }
}

# The monthly budget (budget.tf).
variable "billing_account" {
  description = "Billing account of this environment's project (XXXXXX-XXXXXX-XXXXXX), for its monthly budget. Empty: no budget."
  type        = string
  default     = ""
  validation {
    condition     = var.billing_account == "" || can(regex("^[0-9A-F]{6}-[0-9A-F]{6}-[0-9A-F]{6}$", var.billing_account))
    error_message = "billing_account must be a billing account id, XXXXXX-XXXXXX-XXXXXX, or empty for no budget: set it in envs/ENV.tfvars."
  }
}

variable "monthly_budget" {
  description = "Budget of this environment's project per calendar month, in whole units of the billing account's currency."
  type        = number
  default     = 250
  validation {
    condition     = var.monthly_budget > 0 && floor(var.monthly_budget) == var.monthly_budget
    error_message = "monthly_budget must be a whole number above 0."
  }
}

variable "budget_emails" {
  description = "Addresses the budget's thresholds notify besides the billing account's administrators and users and the project's owners (an on-call or finance group rather than people). Empty: those only."
  type        = list(string)
  default     = []
  validation {
    # A budget notifies at most five Monitoring channels, one per address.
    condition     = length(var.budget_emails) <= 5 && alltrue([for a in var.budget_emails : can(regex("^[^@\\s]+@[^@\\s]+\\.[a-z]{2,}$", a))])
    error_message = "budget_emails must be at most 5 email addresses (a budget notifies at most 5 channels): set them in envs/ENV.tfvars."
  }
}
