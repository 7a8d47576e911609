# The CLI image (Dockerfile at the repository root) on Cloud Run, one identity each.
# The batch and the transform run to completion: Cloud Run jobs, started by Cloud
# Scheduler. The poller and the consumer are loops that run until SIGTERM: Cloud Run
# worker pools, which keep the set number of instances running (an instance that
# exits is replaced) and have no schedule, no timeout and no request path.
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
  }
  workers = {
    # One instance, always: the poller holds the poller memory, rebuilt from
    # bq_raw.carts_events when an instance starts. A second poller would publish the
    # same events again, which the sink skips, for nothing.
    poller = {
      args      = ["stream", "poll"]
      instances = 1
      cpu       = "1"
      memory    = "1Gi"
    }
    # Consumers may run side by side: Pub/Sub orders each cart's events and the sink
    # deduplicates by event id.
    consumer = {
      args      = ["stream", "consume"]
      instances = var.consumer_instances
      cpu       = "1"
      memory    = "1Gi"
    }
  }
  schedules = {
    batch     = var.batch_schedule
    transform = var.transform_schedule
  }
  # What the application needs to find this environment (also an output, for a run by
  # hand), and what the workloads add to it.
  settings = {
    EYP_PROFILE                       = "gcp"
    EYP_ENVIRONMENT                   = var.environment
    EYP_GCP__PROJECT                  = var.project
    EYP_LAKE__GCS__BUCKET             = var.bucket
    EYP_WAREHOUSE__RAW_DATASET        = var.raw_dataset
    EYP_WAREHOUSE__ANALYTICS_DATASET  = var.analytics_dataset
    EYP_WAREHOUSE__BIGQUERY__LOCATION = var.bigquery_location
    EYP_BUS__TOPIC                    = google_pubsub_topic.events.name
    EYP_BUS__SUBSCRIPTION             = google_pubsub_subscription.events.name
    EYP_BUS__DEAD_LETTER_TOPIC        = google_pubsub_topic.dead_letters.name
    # The threshold of the backlog alert policy (monitoring.tf) and of the application's.
    EYP_ALERTS__BACKLOG_AGE = tostring(var.alert_backlog_age_minutes)
  }
  app_env = merge(local.settings, {
    EYP_API_URL                    = var.api_url
    EYP_BUS__ACK_DEADLINE          = tostring(var.ack_deadline_seconds)
    EYP_BUS__MAX_DELIVERY_ATTEMPTS = tostring(var.max_delivery_attempts)
    EYP_DATA_DIR                   = "/tmp/ey-platform"
  })
}

# The settings that are secrets: each variable and the Secret Manager secret whose
# latest version an instance reads when it starts (a job at each execution, a worker
# pool's instances when they are replaced). bootstrap/secrets.tf creates the secret
# without a value and Cloud Run refuses to deploy one that has no version, so the
# webhook is read only once alerts_webhook says its owner added one.
locals {
  alerts_webhook_secret_id = "ey-alerts-webhook"
  secret_env               = var.alerts_webhook ? { EYP_ALERTS__WEBHOOK_URL = local.alerts_webhook_secret_id } : {}
}

# A release is a new image digest: an execution already running finishes on the image
# it started with; the next one runs the new image.
resource "google_cloud_run_v2_job" "job" {
  for_each            = local.run_jobs
  name                = "ey-${each.key}"
  location            = var.region
  deletion_protection = false
  labels              = local.labels

  template {
    task_count  = 1
    parallelism = 1
    template {
      service_account = local.email[each.key]
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
        dynamic "env" {
          for_each = local.secret_env
          content {
            name = env.key
            value_source {
              secret_key_ref {
                secret  = env.value
                version = "latest"
              }
            }
          }
        }
      }
    }
  }
}

# A release replaces each instance with one of the new revision. The old one gets
# SIGTERM and ten seconds to finish the batch or poll in hand; what a consumer had not
# acknowledged is delivered again (the sink skips what had landed), and a poll cut
# short is published again by the next poller, which starts from the warehouse.
resource "google_cloud_run_v2_worker_pool" "worker" {
  for_each            = local.workers
  name                = "ey-${each.key}"
  location            = var.region
  deletion_protection = false
  labels              = local.labels

  scaling {
    scaling_mode          = "MANUAL"
    manual_instance_count = each.value.instances
  }

  template {
    service_account = local.email[each.key]
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
      dynamic "env" {
        for_each = local.secret_env
        content {
          name = env.key
          value_source {
            secret_key_ref {
              secret  = env.value
              version = "latest"
            }
          }
        }
      }
    }
  }
}

resource "google_cloud_scheduler_job" "job" {
  for_each  = local.schedules
  name      = "ey-${each.key}"
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
      service_account_email = local.email.scheduler
    }
  }
}
