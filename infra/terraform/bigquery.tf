# Datasets and raw tables. The tables (schema, partition column, clustering) come from
# the file the application's BigQuery backend reads, so the two cannot drift apart.
locals {
  raw_tables = jsondecode(file("${path.module}/../../src/ey_platform/warehouse/bigquery_tables.json"))
}

resource "google_bigquery_dataset" "raw" {
  #checkov:skip=CKV_GCP_81:Google-managed encryption; a customer key (CMEK) is an organisation decision this project does not impose.
  dataset_id                 = var.raw_dataset
  location                   = var.bigquery_location
  description                = "Raw records as received, event rows, quarantine and the run log."
  delete_contents_on_destroy = false
  labels                     = local.labels
}

resource "google_bigquery_dataset" "analytics" {
  #checkov:skip=CKV_GCP_81:Google-managed encryption; a customer key (CMEK) is an organisation decision this project does not impose.
  dataset_id                 = var.analytics_dataset
  location                   = var.bigquery_location
  description                = "Staging views, the product snapshot and the star schema (dbt)."
  delete_contents_on_destroy = false
  labels                     = local.labels
}

resource "google_bigquery_table" "raw" {
  #checkov:skip=CKV_GCP_80:Google-managed encryption, as for the dataset (CKV_GCP_81).
  for_each            = local.raw_tables
  dataset_id          = google_bigquery_dataset.raw.dataset_id
  table_id            = each.key
  schema              = jsonencode(each.value.schema)
  clustering          = each.value.cluster
  deletion_protection = true
  labels              = local.labels

  dynamic "time_partitioning" {
    for_each = each.value.partition == null ? [] : [each.value.partition]
    content {
      type  = "DAY"
      field = time_partitioning.value
    }
  }
}
