# The identities' grants on this configuration's resources, each on the resource it is
# used on (bootstrap/iam.tf holds those on the bucket, the datasets and the project).
locals {
  # The poller reads what the warehouse landed of each cart: when it starts without its
  # state, and once an hour to delete carts nobody else knows are gone. That table only.
  events_table_grants = {
    poller = { identity = "poller", role = "roles/bigquery.dataViewer" }
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

resource "google_bigquery_table_iam_member" "events" {
  for_each   = local.events_table_grants
  dataset_id = var.raw_dataset
  table_id   = google_bigquery_table.raw["carts_events"].table_id
  role       = each.value.role
  member     = local.sa[each.value.identity]
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
