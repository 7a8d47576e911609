# Set per environment in envs/ENV.tfvars, except image, which the deploy workflow (or a
# rollback) passes. The values shared with bootstrap/ (project, region,
# bigquery_location, bucket) must be the same in both.
variable "project" {
  description = "Google Cloud project of this environment (one project per environment)."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project))
    error_message = "project must be a Google Cloud project id: set it in envs/ENV.tfvars."
  }
}

variable "environment" {
  description = "dev, staging or prod: a label on every resource."
  type        = string
  validation {
    condition     = contains(["dev", "staging", "prod"], var.environment)
    error_message = "environment must be dev, staging or prod."
  }
}

variable "region" {
  description = "Region of Cloud Run and Cloud Scheduler."
  type        = string
  default     = "europe-west1"
}

variable "bigquery_location" {
  description = "Location of the BigQuery datasets (EYP_WAREHOUSE__BIGQUERY__LOCATION)."
  type        = string
  default     = "EU"
}

variable "bucket" {
  description = "Raw lake bucket (EYP_LAKE__GCS__BUCKET), created by bootstrap/. Bucket names are global: each environment sets its own."
  type        = string
  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9_-]{1,49}[a-z0-9]$", var.bucket))
    error_message = "bucket must be a bucket name of at most 51 characters: set it in envs/ENV.tfvars."
  }
}

variable "raw_dataset" {
  description = "Dataset of the raw tables (EYP_WAREHOUSE__RAW_DATASET), created by bootstrap/."
  type        = string
  default     = "bq_raw"
}

variable "analytics_dataset" {
  description = "Dataset of the marts (EYP_WAREHOUSE__ANALYTICS_DATASET), created by bootstrap/."
  type        = string
  default     = "bq_analytics"
}

variable "topic" {
  description = "Topic of cart events (EYP_BUS__TOPIC)."
  type        = string
  default     = "carts-events"
}

variable "subscription" {
  description = "Subscription the consumer reads (EYP_BUS__SUBSCRIPTION)."
  type        = string
  default     = "carts-events-sub"
}

variable "dead_letter_topic" {
  description = "Dead-letter topic (EYP_BUS__DEAD_LETTER_TOPIC)."
  type        = string
  default     = "carts-events-dlq"
}

variable "ack_deadline_seconds" {
  description = "Ack deadline of the subscription (EYP_BUS__ACK_DEADLINE)."
  type        = number
  default     = 60
}

variable "max_delivery_attempts" {
  description = "Deliveries before a message is dead-lettered (EYP_BUS__MAX_DELIVERY_ATTEMPTS)."
  type        = number
  default     = 5
}

variable "image" {
  description = "The CLI image by digest, as pushed by the deploy workflow: REGION-docker.pkg.dev/PROJECT/ey/ey-platform@sha256:DIGEST."
  type        = string
  validation {
    # A digest names one image for good; a tag can move between plan and apply, and
    # between environments.
    condition     = can(regex("^[a-z0-9.-]+(:[0-9]+)?(/[a-z0-9._-]+)+@sha256:[0-9a-f]{64}$", var.image))
    error_message = "image must be a reference by digest, REGISTRY/PATH@sha256:<64 hex digits>, not a tag."
  }
}

variable "api_url" {
  description = "FakeStore API base URL (EYP_API_URL)."
  type        = string
  default     = "https://fakestoreapi.com"
}

variable "batch_schedule" {
  description = "Cron (UTC) of the daily batch."
  type        = string
  default     = "0 2 * * *"
}

variable "transform_schedule" {
  description = "Cron (UTC) of the transform (dbt build)."
  type        = string
  default     = "30 2,8,14,20 * * *"
}

variable "consumer_instances" {
  description = "Instances of the consumer worker pool; 0 pauses it (messages wait in the subscription, up to its retention)."
  type        = number
  default     = 1
  validation {
    condition     = var.consumer_instances >= 0 && var.consumer_instances <= 10 && floor(var.consumer_instances) == var.consumer_instances
    error_message = "consumer_instances must be a whole number from 0 to 10."
  }
}

# Monitoring (monitoring.tf). The budget is bootstrap/'s (bootstrap/budget.tf).
variable "alert_emails" {
  description = "Addresses Cloud Monitoring notifies of the alert policies (an on-call group rather than people). Empty: no email channel."
  type        = list(string)
  default     = []
  validation {
    condition     = alltrue([for a in var.alert_emails : can(regex("^[^@\\s]+@[^@\\s]+\\.[a-z]{2,}$", a))])
    error_message = "alert_emails must be email addresses: set them in envs/ENV.tfvars."
  }
}

variable "alert_webhook_url" {
  description = "HTTPS endpoint Cloud Monitoring posts its incident JSON to (channel type webhook_tokenauth; not a Slack or Chat incoming webhook, which expects its own format: that one is the application's EYP_ALERTS__WEBHOOK_URL). Unset: no webhook channel. Pass it with TF_VAR_alert_webhook_url, not in a tfvars file."
  type        = string
  default     = null
  sensitive   = true
  validation {
    condition     = var.alert_webhook_url == null || startswith(coalesce(var.alert_webhook_url, "-"), "https://")
    error_message = "alert_webhook_url must start with https://."
  }
}

variable "alert_backlog_age_minutes" {
  description = "Minutes the subscription's oldest unacknowledged message may wait before the backlog alert fires (EYP_ALERTS__BACKLOG_AGE, the same threshold for the application's own alert)."
  type        = number
  default     = 15
  validation {
    condition     = var.alert_backlog_age_minutes > 0
    error_message = "alert_backlog_age_minutes must be a positive number of minutes."
  }
}

variable "alerts_webhook" {
  description = "Whether the jobs and worker pools read EYP_ALERTS__WEBHOOK_URL, the application's chat webhook, from the secret ey-alerts-webhook (bootstrap/secrets.tf). Cloud Run refuses a secret with no version: turn it on once the URL is added (gcloud secrets versions add ey-alerts-webhook --data-file=-). Off: the application sends no alert of its own."
  type        = bool
  default     = false
}
