# What the application's settings need (see README, Deployment).
output "settings" {
  description = "EYP_* settings for a manual run against this environment."
  value = {
    EYP_PROFILE                      = "gcp"
    EYP_GCP__PROJECT                 = var.project
    EYP_LAKE__BUCKET                 = google_storage_bucket.raw.name
    EYP_WAREHOUSE__RAW_DATASET       = google_bigquery_dataset.raw.dataset_id
    EYP_WAREHOUSE__ANALYTICS_DATASET = google_bigquery_dataset.analytics.dataset_id
    EYP_WAREHOUSE__BIGQUERY_LOCATION = var.bigquery_location
    EYP_BUS__TOPIC                   = google_pubsub_topic.events.name
    EYP_BUS__SUBSCRIPTION            = google_pubsub_subscription.events.name
    EYP_BUS__DEAD_LETTER_TOPIC       = google_pubsub_topic.dead_letters.name
  }
}

output "service_accounts" {
  description = "The identity of each job."
  value       = { for name, account in google_service_account.job : name => account.email }
}

output "jobs" {
  description = "Cloud Run jobs, to run by hand: gcloud run jobs execute NAME --region REGION."
  value       = { for name, job in google_cloud_run_v2_job.job : name => job.name }
}
