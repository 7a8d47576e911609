resource "google_pubsub_topic" "events" {
  #checkov:skip=CKV_GCP_83:Google-managed encryption; a customer key (CMEK) is an organisation decision this project does not impose.
  name                       = var.topic
  labels                     = local.labels
  message_retention_duration = "604800s"
}

resource "google_pubsub_topic" "dead_letters" {
  #checkov:skip=CKV_GCP_83:Google-managed encryption; a customer key (CMEK) is an organisation decision this project does not impose.
  name                       = var.dead_letter_topic
  labels                     = local.labels
  message_retention_duration = "2678400s"
}

resource "google_pubsub_subscription" "events" {
  name                         = var.subscription
  topic                        = google_pubsub_topic.events.id
  labels                       = local.labels
  ack_deadline_seconds         = var.ack_deadline_seconds
  enable_message_ordering      = true
  enable_exactly_once_delivery = true
  message_retention_duration   = "604800s"

  expiration_policy {
    ttl = "" # never expires, even when no consumer runs for a while
  }

  retry_policy {
    minimum_backoff = "10s"
    maximum_backoff = "600s"
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letters.id
    max_delivery_attempts = var.max_delivery_attempts
  }
}

# Keeps what reaches the dead-letter topic (a topic without a subscription drops it).
resource "google_pubsub_subscription" "dead_letters" {
  name                       = "${var.dead_letter_topic}-sub"
  topic                      = google_pubsub_topic.dead_letters.id
  labels                     = local.labels
  message_retention_duration = "604800s"
  ack_deadline_seconds       = 60

  expiration_policy {
    ttl = ""
  }
}

# Pub/Sub's own service agent moves messages to the dead-letter topic: it must publish
# there and acknowledge on the source subscription.
resource "google_pubsub_topic_iam_member" "dead_letter_forwarder" {
  topic  = google_pubsub_topic.dead_letters.id
  role   = "roles/pubsub.publisher"
  member = local.pubsub_agent
}

resource "google_pubsub_subscription_iam_member" "dead_letter_acker" {
  subscription = google_pubsub_subscription.events.id
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_agent
}
