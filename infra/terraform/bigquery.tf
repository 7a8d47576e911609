# The raw layer, in the datasets bootstrap/bigquery.tf creates: its tables and views.
# Both come from the file the application's warehouse backends read
# (src/ey_platform/warehouse/raw_schema.json), so the two cannot drift apart.
locals {
  raw_schema = jsondecode(file("${path.module}/../../src/ey_platform/warehouse/raw_schema.json"))
  # Each table: its BigQuery schema (name, type, mode of every column), partition
  # column and clustering. The file's other column keys are for the DuckDB backend.
  raw_tables = {
    for name, table in local.raw_schema.tables : name => {
      schema    = jsonencode([for c in table.columns : { name = c.name, type = c.type, mode = c.mode }])
      partition = table.partition
      cluster   = table.cluster
    }
  }
  # Each view's query, with every {table} named as BigQuery names it.
  raw_views = {
    for name, view in local.raw_schema.views : name =>
    replace(join("\n", view.query), "/\\{(\\w+)\\}/", "`${var.project}.${var.raw_dataset}.$1`")
  }
}

resource "google_bigquery_table" "raw" {
  #checkov:skip=CKV_GCP_80:Google-managed encryption, as for the datasets (CKV_GCP_81).
  for_each            = local.raw_tables
  dataset_id          = var.raw_dataset
  table_id            = each.key
  schema              = each.value.schema
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

resource "google_bigquery_table" "raw_view" {
  #checkov:skip=CKV_GCP_80:A view holds no data of its own to encrypt; its tables are Google-encrypted.
  for_each            = local.raw_views
  dataset_id          = var.raw_dataset
  table_id            = each.key
  deletion_protection = true
  labels              = local.labels

  view {
    query          = each.value
    use_legacy_sql = false
  }

  depends_on = [google_bigquery_table.raw]
}
