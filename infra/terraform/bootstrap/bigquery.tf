# The datasets. The raw tables (schemas, partitioning, clustering) belong to the
# platform (infra/terraform/bigquery.tf): they change with the code, and the deployer,
# owner of the datasets, applies them. Creating a dataset is an owner's act.
resource "google_bigquery_dataset" "raw" {
  #checkov:skip=CKV_GCP_81:Google-managed encryption; a customer key (CMEK) is an organisation decision this project does not impose.
  dataset_id                 = var.raw_dataset
  location                   = var.bigquery_location
  description                = "Raw records as received, event rows, quarantine and the run log."
  delete_contents_on_destroy = false
  labels                     = local.labels
  depends_on                 = [google_project_service.enabled]
}

resource "google_bigquery_dataset" "analytics" {
  #checkov:skip=CKV_GCP_81:Google-managed encryption; a customer key (CMEK) is an organisation decision this project does not impose.
  dataset_id                 = var.analytics_dataset
  location                   = var.bigquery_location
  description                = "The published star schema: what readers and BI tools see."
  delete_contents_on_destroy = false
  labels                     = local.labels
  depends_on                 = [google_project_service.enabled]
}

# Where the transform's dbt builds and tests every model (staging views, the product
# snapshot, the marts) before the platform publishes the marts to the analytics dataset:
# private to the transform, so that no reader sees a mart whose tests have not passed.
# Named after the analytics dataset, as the application derives it
# (settings.warehouse.build_dataset). No expiration: the snapshot's history is here.
resource "google_bigquery_dataset" "build" {
  #checkov:skip=CKV_GCP_81:Google-managed encryption; a customer key (CMEK) is an organisation decision this project does not impose.
  dataset_id                 = "${var.analytics_dataset}_build"
  location                   = var.bigquery_location
  description                = "dbt's build: every model, built and tested before the marts are published to ${var.analytics_dataset}."
  delete_contents_on_destroy = false
  labels                     = local.labels
  depends_on                 = [google_project_service.enabled]
}

# Where the deploy workflow's dbt check builds the models a change modifies, before
# the release reaches the marts (scripts/deploy.sh dbt-check, EYP_DBT_CI_DATASET).
# What it builds there expires by itself.
resource "google_bigquery_dataset" "ci" {
  #checkov:skip=CKV_GCP_81:Google-managed encryption; a customer key (CMEK) is an organisation decision this project does not impose.
  dataset_id                  = var.ci_dataset
  location                    = var.bigquery_location
  description                 = "Models a change modifies, built and tested by the deploy workflow's dbt check."
  default_table_expiration_ms = 7 * 24 * 60 * 60 * 1000
  delete_contents_on_destroy  = false
  labels                      = local.labels
  depends_on                  = [google_project_service.enabled]
}
