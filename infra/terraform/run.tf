# The CLI image (Dockerfile at the repository root) as Cloud Run jobs, one per identity.
# The poller and the consumer are long-running: each job runs one task for up to 24 h
# and Cloud Scheduler starts it again every day (a poller's task starts with no state
# of its own: it starts from what bq_raw.carts_events holds of each cart).
locals {
  run_jobs = {
    batch = {
      args    = ["batch", "--entity", "all"]
      timeout = "3600s"
      cpu     = "2"
      memory  = "2Gi"
    }
    transform = {
      args    = ["transform"]
      timeout = "3600s"
      cpu     = "1"
      memory  = "1Gi"
    }
    poller = {
      args    = ["stream", "poll"]
      timeout = "86400s"
      cpu     = "1"
      memory  = "1Gi"
    }
    consumer = {
      args    = ["stream", "consume"]
      timeout = "86400s"
      cpu     = "1"
      memory  = "1Gi"
    }
  }
  schedules = {
    batch     = var.batch_schedule
    transform = var.transform_schedule
    poller    = var.stream_restart_schedule
    consumer  = var.stream_restart_schedule
  }
  # What the application needs to find this environment (also an output, for a run by
  # hand), and what the jobs add to it.
  settings = {
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
  app_env = merge(local.settings, {
    EYP_API_URL                    = var.api_url
    EYP_BUS__ACK_DEADLINE          = tostring(var.ack_deadline_seconds)
    EYP_BUS__MAX_DELIVERY_ATTEMPTS = tostring(var.max_delivery_attempts)
    EYP_DATA_DIR                   = "/tmp/ey-platform"
  })
}

resource "google_cloud_run_v2_job" "job" {
  for_each            = local.run_jobs
  name                = "ey-${each.key}-${var.environment}"
  location            = var.region
  deletion_protection = false
  labels              = local.labels

  template {
    task_count  = 1
    parallelism = 1
    template {
      service_account = google_service_account.job[each.key].email
      timeout         = each.value.timeout
      max_retries     = 1
      containers {
        image = var.image
        args  = each.value.args
        resources {
          limits = {
            cpu    = each.value.cpu
            memory = each.value.memory
          }
        }
        dynamic "env" {
          for_each = local.app_env
          content {
            name  = env.key
            value = env.value
          }
        }
      }
    }
  }
}

resource "google_cloud_scheduler_job" "job" {
  for_each  = local.schedules
  name      = "ey-${each.key}-${var.environment}"
  region    = var.region
  schedule  = each.value
  time_zone = "Etc/UTC"

  retry_config {
    retry_count = 1
  }

  http_target {
    http_method = "POST"
    uri         = "https://run.googleapis.com/v2/projects/${var.project}/locations/${var.region}/jobs/${google_cloud_run_v2_job.job[each.key].name}:run"
    oauth_token {
      service_account_email = google_service_account.job["scheduler"].email
    }
  }
}
