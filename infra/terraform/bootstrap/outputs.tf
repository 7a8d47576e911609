# What the GitHub Environment of this environment needs (see README, Deployment).
output "workload_identity_provider" {
  description = "GCP_WORKLOAD_IDENTITY_PROVIDER: the provider google-github-actions/auth exchanges tokens with."
  value       = google_iam_workload_identity_pool_provider.github.name
}

output "deployer" {
  description = "GCP_DEPLOYER: the service account the deploy workflow acts as."
  value       = google_service_account.deployer.email
}

output "registry" {
  description = "Where the deploy workflow pushes this environment's image (REGISTRY/ey-platform@DIGEST)."
  value       = "${google_artifact_registry_repository.ey.location}-docker.pkg.dev/${var.project}/${google_artifact_registry_repository.ey.repository_id}"
}

output "service_accounts" {
  description = "The identity of each workload."
  value       = { for name, account in google_service_account.job : name => account.email }
}

output "bi_service_account" {
  description = "The identity BI tools read the published marts as (impersonation or workload identity; no key)."
  value       = google_service_account.bi.email
}

output "budget" {
  description = "The monthly budget on the billing account, or null when billing_account is empty."
  value       = one(google_billing_budget.monthly[*].name)
}

output "alerts_webhook_secret" {
  description = "The secret of the application's chat webhook: add the URL as a version (gcloud secrets versions add NAME --data-file=-), then set alerts_webhook = true in the platform."
  value       = google_secret_manager_secret.alerts_webhook.secret_id
}
