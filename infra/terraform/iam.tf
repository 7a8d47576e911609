# One identity per job, each granted only what it uses, on the resource it uses it on.
# No admin role, no basic role (owner/editor), no service account key: the jobs run as
# these accounts on Cloud Run and get short-lived tokens from the metadata server.
locals {
  jobs = {
    batch     = "Daily batch: API -> lake -> bq_raw"
    poller    = "Cart poller: API -> Pub/Sub"
    consumer  = "Cart consumer: Pub/Sub -> bq_raw.carts_events"
    transform = "dbt build: bq_raw -> bq_analytics"
    scheduler = "Cloud Scheduler: starts the Cloud Run jobs"
  }
}

resource "google_service_account" "job" {
  for_each     = local.jobs
  account_id   = "ey-${each.key}-${var.environment}"
  display_name = each.value
}

locals {
  sa = { for name, account in google_service_account.job : name => "serviceAccount:${account.email}" }
}

# -- batch: writes and reads lake objects (no delete), loads bq_raw ---------------------
resource "google_storage_bucket_iam_member" "batch_create" {
  bucket = google_storage_bucket.raw.name
  role   = "roles/storage.objectCreator"
  member = local.sa.batch
}

resource "google_storage_bucket_iam_member" "batch_read" {
  bucket = google_storage_bucket.raw.name
  role   = "roles/storage.objectViewer" # --from-lake, and load jobs read as the job's identity
  member = local.sa.batch
}

resource "google_bigquery_dataset_iam_member" "batch_raw" {
  dataset_id = google_bigquery_dataset.raw.dataset_id
  role       = "roles/bigquery.dataEditor" # load jobs, staging tables, the day's DML
  member     = local.sa.batch
}

# -- poller: publishes events, writes rejected carts to the lake's quarantine ------------
resource "google_pubsub_topic_iam_member" "poller_publish" {
  topic  = google_pubsub_topic.events.id
  role   = "roles/pubsub.publisher"
  member = local.sa.poller
}

resource "google_storage_bucket_iam_member" "poller_create" {
  bucket = google_storage_bucket.raw.name
  role   = "roles/storage.objectCreator"
  member = local.sa.poller
}

# -- consumer: pulls and acks, dead-letters invalid messages, writes carts_events --------
resource "google_pubsub_subscription_iam_member" "consumer_pull" {
  subscription = google_pubsub_subscription.events.id
  role         = "roles/pubsub.subscriber"
  member       = local.sa.consumer
}

resource "google_pubsub_topic_iam_member" "consumer_dead_letter" {
  topic  = google_pubsub_topic.dead_letters.id
  role   = "roles/pubsub.publisher"
  member = local.sa.consumer
}

resource "google_bigquery_dataset_iam_member" "consumer_raw" {
  dataset_id = google_bigquery_dataset.raw.dataset_id
  role       = "roles/bigquery.dataEditor" # the MERGE into carts_events
  member     = local.sa.consumer
}

# -- transform: reads bq_raw, builds bq_analytics -----------------------------------------
resource "google_bigquery_dataset_iam_member" "transform_raw" {
  dataset_id = google_bigquery_dataset.raw.dataset_id
  role       = "roles/bigquery.dataViewer"
  member     = local.sa.transform
}

resource "google_bigquery_dataset_iam_member" "transform_analytics" {
  dataset_id = google_bigquery_dataset.analytics.dataset_id
  role       = "roles/bigquery.dataEditor"
  member     = local.sa.transform
}

# -- running queries and load jobs is a project-level permission in BigQuery --------------
resource "google_project_iam_member" "job_user" {
  for_each = toset(["batch", "consumer", "transform"])
  project  = var.project
  role     = "roles/bigquery.jobUser"
  member   = local.sa[each.key]
}

# -- the scheduler may start the jobs, nothing else ---------------------------------------
resource "google_cloud_run_v2_job_iam_member" "scheduler_runs" {
  for_each = google_cloud_run_v2_job.job
  name     = each.value.name
  location = each.value.location
  role     = "roles/run.invoker"
  member   = local.sa.scheduler
}
