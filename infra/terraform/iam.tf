# The identities' grants on this configuration's resources, each on the resource it is
# used on (bootstrap/iam.tf holds those on the bucket, the datasets and the project).
locals {
  # Grants on single tables of bq_raw, to the identities that use a few of its tables and
  # need none of the others. roles/bigquery.dataEditor on a table holds, on that table
  # only, bigquery.tables.getData and bigquery.tables.updateData (and get, update and
  # delete of the table itself), and nothing on the dataset: it creates no table. With
  # bigquery.jobs.create, from the project's bigquery.jobUser, that is all a query job
  # needs to SELECT, INSERT and DELETE there, the replace of a row (a DELETE then an
  # INSERT in one transaction) included.
  raw_table_grants = {
    # The poller reads what the warehouse landed of each cart: when it starts without
    # its state, and once an hour to delete carts nobody else knows are gone.
    poller_events = { identity = "poller", table = "carts_events", role = "roles/bigquery.dataViewer" }
    # The alerts' dedupe state: every workload that alerts reads and writes it (the batch
    # and the consumer through their grant on the dataset).
    poller_incidents    = { identity = "poller", table = "_incidents", role = "roles/bigquery.dataEditor" }
    transform_incidents = { identity = "transform", table = "_incidents", role = "roles/bigquery.dataEditor" }
    # The transform records its own runs and its checks (freshness, dbt tests).
    transform_runs    = { identity = "transform", table = "_pipeline_runs", role = "roles/bigquery.dataEditor" }
    transform_quality = { identity = "transform", table = "_quality_results", role = "roles/bigquery.dataEditor" }
  }
  topic_grants = {
    poller = { identity = "poller", role = "roles/pubsub.publisher" }
  }
  dead_letter_topic_grants = {
    consumer = { identity = "consumer", role = "roles/pubsub.publisher" } # invalid messages, with their reason
  }
  subscription_grants = {
    consumer = { identity = "consumer", role = "roles/pubsub.subscriber" }
  }
}

resource "google_bigquery_table_iam_member" "raw" {
  for_each   = local.raw_table_grants
  dataset_id = var.raw_dataset
  table_id   = google_bigquery_table.raw[each.value.table].table_id
  role       = each.value.role
  member     = local.sa[each.value.identity]
}

# The poller reads carts_events through the cart_states view (each cart's latest
# observed state): a view that is not authorized is read with the rights of the reader,
# on the view as on its table.
resource "google_bigquery_table_iam_member" "raw_view" {
  dataset_id = var.raw_dataset
  table_id   = google_bigquery_table.raw_view["cart_states"].table_id
  role       = "roles/bigquery.dataViewer"
  member     = local.sa.poller
}

# The poller's grant on carts_events, under its earlier address: kept, not replaced.
moved {
  from = google_bigquery_table_iam_member.events["poller"]
  to   = google_bigquery_table_iam_member.raw["poller_events"]
}

resource "google_pubsub_topic_iam_member" "events" {
  for_each = local.topic_grants
  topic    = google_pubsub_topic.events.id
  role     = each.value.role
  member   = local.sa[each.value.identity]
}

resource "google_pubsub_topic_iam_member" "dead_letters" {
  for_each = local.dead_letter_topic_grants
  topic    = google_pubsub_topic.dead_letters.id
  role     = each.value.role
  member   = local.sa[each.value.identity]
}

resource "google_pubsub_subscription_iam_member" "events" {
  for_each     = local.subscription_grants
  subscription = google_pubsub_subscription.events.id
  role         = each.value.role
  member       = local.sa[each.value.identity]
}
