# The chat webhook the application sends its own alerts to (EYP_ALERTS__WEBHOOK_URL).
# Terraform creates the secret and never its value: a version here would put the URL in
# the state. The owner adds it by hand (gcloud secrets versions add ey-alerts-webhook
# --data-file=-), then turns alerts_webhook on in the platform, whose jobs and worker
# pools read the latest version when an instance starts. Who may read it: iam.tf
# (alerts_webhook_grants).
resource "google_secret_manager_secret" "alerts_webhook" {
  secret_id = "ey-alerts-webhook"
  labels    = local.labels

  # Google-managed encryption, as for the bucket and the datasets. The URL is changed
  # by whoever owns the chat space, not on a schedule: no rotation.
  replication {
    auto {}
  }

  # Deleting the secret deletes the version added by hand, which Terraform cannot
  # bring back.
  deletion_protection = true

  depends_on = [google_project_service.enabled]
}
