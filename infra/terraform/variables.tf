variable "project" {
  description = "Google Cloud project id."
  type        = string
}

variable "environment" {
  description = "dev or prod: a label on every resource and a suffix of the job names."
  type        = string
  validation {
    condition     = contains(["dev", "prod"], var.environment)
    error_message = "environment must be dev or prod."
  }
}

variable "region" {
  description = "Region of Cloud Run, Cloud Scheduler and the bucket."
  type        = string
  default     = "europe-west1"
}

variable "bigquery_location" {
  description = "Location of the BigQuery datasets (EYP_WAREHOUSE__BIGQUERY_LOCATION)."
  type        = string
  default     = "EU"
}

variable "bucket" {
  description = "Raw lake bucket (EYP_LAKE__BUCKET). Bucket names are global: prefix it per project."
  type        = string
  default     = "ey-data-platform-raw-data"
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

variable "image" {
  description = "Container image of the CLI (built from the Dockerfile), e.g. REGION-docker.pkg.dev/PROJECT/ey/ey-platform:TAG."
  type        = string
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

variable "stream_restart_schedule" {
  description = "Cron (UTC) that starts the poller and consumer jobs; each runs until its task timeout (24 h)."
  type        = string
  default     = "0 0 * * *"
}
