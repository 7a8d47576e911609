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

# Every grant, by resource: which job, which role, and why.
locals {
  bucket_grants = {
    batch_create  = { job = "batch", role = "roles/storage.objectCreator" }  # lake parts, manifests
    batch_read    = { job = "batch", role = "roles/storage.objectViewer" }   # --from-lake; load jobs read as the job
    poller_create = { job = "poller", role = "roles/storage.objectCreator" } # rejected carts' quarantine
  }
  raw_dataset_grants = {
    batch     = { job = "batch", role = "roles/bigquery.dataEditor" }     # staging tables, the day's DML
    consumer  = { job = "consumer", role = "roles/bigquery.dataEditor" }  # the MERGE into carts_events
    transform = { job = "transform", role = "roles/bigquery.dataViewer" } # dbt reads the sources
  }
  # The poller reads what the warehouse landed of each cart: when it starts without its
  # state, and once an hour to delete carts nobody else knows are gone. That table only.
  events_table_grants = {
    poller = { job = "poller", role = "roles/bigquery.dataViewer" }
  }
  analytics_dataset_grants = {
    transform = { job = "transform", role = "roles/bigquery.dataEditor" } # dbt builds the marts
  }
  topic_grants = {
    poller = { job = "poller", role = "roles/pubsub.publisher" }
  }
  dead_letter_topic_grants = {
    consumer = { job = "consumer", role = "roles/pubsub.publisher" } # invalid messages, with their reason
  }
  subscription_grants = {
    consumer = { job = "consumer", role = "roles/pubsub.subscriber" }
  }
  # Running queries and load jobs is a project-level permission in BigQuery.
  project_grants = {
    batch     = { job = "batch", role = "roles/bigquery.jobUser" }
    poller    = { job = "poller", role = "roles/bigquery.jobUser" }
    consumer  = { job = "consumer", role = "roles/bigquery.jobUser" }
    transform = { job = "transform", role = "roles/bigquery.jobUser" }
  }
}

resource "google_storage_bucket_iam_member" "raw" {
  for_each = local.bucket_grants
  bucket   = google_storage_bucket.raw.name
  role     = each.value.role
  member   = local.sa[each.value.job]
}

resource "google_bigquery_dataset_iam_member" "raw" {
  for_each   = local.raw_dataset_grants
  dataset_id = google_bigquery_dataset.raw.dataset_id
  role       = each.value.role
  member     = local.sa[each.value.job]
}

resource "google_bigquery_table_iam_member" "events" {
  for_each   = local.events_table_grants
  dataset_id = google_bigquery_dataset.raw.dataset_id
  table_id   = google_bigquery_table.raw["carts_events"].table_id
  role       = each.value.role
  member     = local.sa[each.value.job]
}

resource "google_bigquery_dataset_iam_member" "analytics" {
  for_each   = local.analytics_dataset_grants
  dataset_id = google_bigquery_dataset.analytics.dataset_id
  role       = each.value.role
  member     = local.sa[each.value.job]
}

resource "google_pubsub_topic_iam_member" "events" {
  for_each = local.topic_grants
  topic    = google_pubsub_topic.events.id
  role     = each.value.role
  member   = local.sa[each.value.job]
}

resource "google_pubsub_topic_iam_member" "dead_letters" {
  for_each = local.dead_letter_topic_grants
  topic    = google_pubsub_topic.dead_letters.id
  role     = each.value.role
  member   = local.sa[each.value.job]
}

resource "google_pubsub_subscription_iam_member" "events" {
  for_each     = local.subscription_grants
  subscription = google_pubsub_subscription.events.id
  role         = each.value.role
  member       = local.sa[each.value.job]
}

resource "google_project_iam_member" "job_user" {
  for_each = local.project_grants
  project  = var.project
  role     = each.value.role
  member   = local.sa[each.value.job]
}

# The scheduler may start the jobs, nothing else.
resource "google_cloud_run_v2_job_iam_member" "scheduler_runs" {
  for_each = google_cloud_run_v2_job.job
  name     = each.value.name
  location = each.value.location
  role     = "roles/run.invoker"
  member   = local.sa.scheduler
}
