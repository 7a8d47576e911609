# One identity per workload, each granted only what it uses, on the resource it uses it
# on. No basic role (owner/editor), no service account key: the jobs and worker pools
# run as these accounts on Cloud Run and get short-lived tokens from the metadata
# server (the BI identity, which runs none, has no key either). The grants on the stores
# of this configuration (bucket, datasets, the alerts webhook's secret) and on the
# project are here; those on the platform's resources (the grants on single raw tables,
# the topics, the subscription) are in infra/terraform/iam.tf, next to their resources.
locals {
  identities = {
    batch     = "Daily batch: API -> lake -> bq_raw"
    poller    = "Cart poller: API -> Pub/Sub"
    consumer  = "Cart consumer: Pub/Sub -> bq_raw.carts_events"
    transform = "dbt build: bq_raw -> bq_analytics_build, published to bq_analytics"
    scheduler = "Cloud Scheduler: starts the batch and transform jobs"
  }
}

resource "google_service_account" "job" {
  for_each     = local.identities
  account_id   = "ey-${each.key}"
  display_name = each.value
  depends_on   = [google_project_service.enabled]
}

# The identity of BI tools and analysts' notebooks: it reads the published marts and
# nothing else (not the raw layer, not the build). It runs no workload of the platform,
# so the deployer cannot act as it. No key is created here: a BI tool on Google Cloud
# impersonates it or runs as it by workload identity; one that needs a key gets one made
# by an owner, outside Terraform (a key in the state would be a secret in the state).
resource "google_service_account" "bi" {
  account_id   = "ey-bi"
  display_name = "BI tools: read the published marts (${var.analytics_dataset})"
  depends_on   = [google_project_service.enabled]
}

locals {
  sa = merge(
    { for name, account in google_service_account.job : name => "serviceAccount:${account.email}" },
    { deployer = "serviceAccount:${google_service_account.deployer.email}" },
    { bi = "serviceAccount:${google_service_account.bi.email}" },
  )
}

# Every grant, by resource: which identity, which role, and why.
locals {
  bucket_grants = {
    batch_create  = { identity = "batch", role = "roles/storage.objectCreator" }  # lake parts, manifests
    batch_read    = { identity = "batch", role = "roles/storage.objectViewer" }   # --from-lake; load jobs read as the job
    poller_create = { identity = "poller", role = "roles/storage.objectCreator" } # rejected carts' quarantine
  }
  raw_dataset_grants = {
    batch     = { identity = "batch", role = "roles/bigquery.dataEditor" }     # staging tables, the day's DML
    consumer  = { identity = "consumer", role = "roles/bigquery.dataEditor" }  # the MERGE into carts_events
    transform = { identity = "transform", role = "roles/bigquery.dataViewer" } # dbt reads the sources
    deployer  = { identity = "deployer", role = "roles/bigquery.dataOwner" }   # the raw tables and the grants on single ones (iam.tf)
  }
  analytics_dataset_grants = {
    transform = { identity = "transform", role = "roles/bigquery.dataEditor" } # the publication replaces the marts
    deployer  = { identity = "deployer", role = "roles/bigquery.dataViewer" }  # dbt's deferred reads, the smoke run's row counts
    bi        = { identity = "bi", role = "roles/bigquery.dataViewer" }        # BI tools read the published marts
  }
  # dbt builds and tests there; the transform alone writes it (the publication copies
  # from it), and the deployer's dbt check reads what a change does not rebuild.
  build_dataset_grants = {
    transform = { identity = "transform", role = "roles/bigquery.dataEditor" }
    deployer  = { identity = "deployer", role = "roles/bigquery.dataViewer" } # dbt's deferred reads
  }
  ci_dataset_grants = {
    deployer = { identity = "deployer", role = "roles/bigquery.dataEditor" } # dbt builds and tests a change there, before the release
  }
  # Running queries and load jobs is a project-level permission in BigQuery. The
  # scheduler may start the batch and transform jobs: the only Cloud Run jobs in this
  # environment's project.
  project_grants = {
    batch           = { identity = "batch", role = "roles/bigquery.jobUser" }
    poller          = { identity = "poller", role = "roles/bigquery.jobUser" }
    consumer        = { identity = "consumer", role = "roles/bigquery.jobUser" }
    transform       = { identity = "transform", role = "roles/bigquery.jobUser" }
    bi              = { identity = "bi", role = "roles/bigquery.jobUser" } # its queries run as jobs of this project
    scheduler_start = { identity = "scheduler", role = "roles/run.invoker" }
  }
  # The workloads that send alerts read the webhook's secret (secrets.tf), that secret
  # only: the scheduler and the deployer send none.
  alerts_webhook_grants = {
    batch     = { identity = "batch", role = "roles/secretmanager.secretAccessor" }
    poller    = { identity = "poller", role = "roles/secretmanager.secretAccessor" }
    consumer  = { identity = "consumer", role = "roles/secretmanager.secretAccessor" }
    transform = { identity = "transform", role = "roles/secretmanager.secretAccessor" }
  }
}

resource "google_storage_bucket_iam_member" "raw" {
  for_each = local.bucket_grants
  bucket   = google_storage_bucket.raw.name
  role     = each.value.role
  member   = local.sa[each.value.identity]
}

resource "google_bigquery_dataset_iam_member" "raw" {
  for_each   = local.raw_dataset_grants
  dataset_id = google_bigquery_dataset.raw.dataset_id
  role       = each.value.role
  member     = local.sa[each.value.identity]
}

resource "google_bigquery_dataset_iam_member" "analytics" {
  for_each   = local.analytics_dataset_grants
  dataset_id = google_bigquery_dataset.analytics.dataset_id
  role       = each.value.role
  member     = local.sa[each.value.identity]
}

resource "google_bigquery_dataset_iam_member" "build" {
  for_each   = local.build_dataset_grants
  dataset_id = google_bigquery_dataset.build.dataset_id
  role       = each.value.role
  member     = local.sa[each.value.identity]
}

resource "google_bigquery_dataset_iam_member" "ci" {
  for_each   = local.ci_dataset_grants
  dataset_id = google_bigquery_dataset.ci.dataset_id
  role       = each.value.role
  member     = local.sa[each.value.identity]
}

resource "google_project_iam_member" "workload" {
  for_each = local.project_grants
  project  = var.project
  role     = each.value.role
  member   = local.sa[each.value.identity]
}

resource "google_secret_manager_secret_iam_member" "alerts_webhook" {
  for_each  = local.alerts_webhook_grants
  project   = google_secret_manager_secret.alerts_webhook.project
  secret_id = google_secret_manager_secret.alerts_webhook.secret_id
  role      = each.value.role
  member    = local.sa[each.value.identity]
}
