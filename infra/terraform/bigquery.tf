# The raw tables, in the datasets bootstrap/bigquery.tf creates. Schema, partition
# column and clustering come from the file the application's BigQuery backend reads,
# so the two cannot drift apart.
locals {
  raw_tables = jsondecode(file("${path.module}/../../src/ey_platform/warehouse/bigquery_tables.json"))
}

resource "google_bigquery_table" "raw" {
  #checkov:skip=CKV_GCP_80:Google-managed encryption, as for the datasets (CKV_GCP_81).
  for_each            = local.raw_tables
  dataset_id          = var.raw_dataset
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
