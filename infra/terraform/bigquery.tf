# Datasets and raw tables. The schemas, partitioning and clustering are the ones
# ey_platform/warehouse/bigquery.py creates when it may (tests/unit/test_terraform.py
# keeps the two equal); here they exist before any job runs.
locals {
  raw_entity_schema = [
    { name = "_raw", type = "JSON", mode = "REQUIRED" },
    { name = "id", type = "INT64", mode = "NULLABLE" },
    { name = "_ingestion_date", type = "DATE", mode = "REQUIRED" },
    { name = "_extracted_at", type = "TIMESTAMP", mode = "REQUIRED" },
    { name = "_loaded_at", type = "TIMESTAMP", mode = "REQUIRED" },
    { name = "_source_file", type = "STRING", mode = "REQUIRED" },
    { name = "_run_id", type = "STRING", mode = "REQUIRED" },
    { name = "_record_hash", type = "STRING", mode = "REQUIRED" },
  ]

  raw_tables = {
    products = {
      schema    = local.raw_entity_schema
      partition = "_ingestion_date"
      cluster   = ["id"]
    }
    users = {
      schema    = local.raw_entity_schema
      partition = "_ingestion_date"
      cluster   = ["id"]
    }
    carts_events = {
      schema = [
        { name = "event_id", type = "STRING", mode = "REQUIRED" },
        { name = "event_type", type = "STRING", mode = "REQUIRED" },
        { name = "schema_version", type = "INT64", mode = "REQUIRED" },
        { name = "cart_id", type = "INT64", mode = "REQUIRED" },
        { name = "cart_version", type = "INT64", mode = "REQUIRED" },
        { name = "content_hash", type = "STRING", mode = "NULLABLE" },
        { name = "cart", type = "JSON", mode = "NULLABLE" },
        { name = "extracted_at", type = "TIMESTAMP", mode = "REQUIRED" },
        { name = "published_at", type = "TIMESTAMP", mode = "REQUIRED" },
        { name = "_bus_message_id", type = "STRING", mode = "REQUIRED" },
        { name = "_bus_publish_time", type = "TIMESTAMP", mode = "REQUIRED" },
        { name = "_loaded_at", type = "TIMESTAMP", mode = "REQUIRED" },
        { name = "_event_date", type = "DATE", mode = "REQUIRED" },
      ]
      partition = "_event_date"
      cluster   = ["cart_id", "event_id"]
    }
    _quarantine = {
      schema = [
        { name = "entity", type = "STRING", mode = "REQUIRED" },
        { name = "_ingestion_date", type = "DATE", mode = "REQUIRED" },
        { name = "_run_id", type = "STRING", mode = "REQUIRED" },
        { name = "reason", type = "STRING", mode = "REQUIRED" },
        { name = "record", type = "JSON", mode = "NULLABLE" },
        { name = "_source_file", type = "STRING", mode = "REQUIRED" },
        { name = "_loaded_at", type = "TIMESTAMP", mode = "REQUIRED" },
      ]
      partition = "_ingestion_date"
      cluster   = ["entity"]
    }
    _pipeline_runs = {
      schema = [
        { name = "run_id", type = "STRING", mode = "REQUIRED" },
        { name = "job", type = "STRING", mode = "REQUIRED" },
        { name = "entity", type = "STRING", mode = "REQUIRED" },
        { name = "ingestion_date", type = "DATE", mode = "NULLABLE" },
        { name = "started_at", type = "TIMESTAMP", mode = "REQUIRED" },
        { name = "source", type = "STRING", mode = "NULLABLE" },
        { name = "status", type = "STRING", mode = "REQUIRED" },
        { name = "finished_at", type = "TIMESTAMP", mode = "NULLABLE" },
        { name = "extracted", type = "INT64", mode = "NULLABLE" },
        { name = "valid", type = "INT64", mode = "NULLABLE" },
        { name = "quarantined", type = "INT64", mode = "NULLABLE" },
        { name = "landed", type = "INT64", mode = "NULLABLE" },
        { name = "loaded", type = "INT64", mode = "NULLABLE" },
        { name = "content_sha256", type = "STRING", mode = "NULLABLE" },
        { name = "error", type = "STRING", mode = "NULLABLE" },
      ]
      partition = null
      cluster   = ["job", "entity"]
    }
  }
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
