# What the application's settings need (see README, Deployment).
output "settings" {
  description = "EYP_* settings for a manual run against this environment."
  value       = local.settings
}

output "service_accounts" {
  description = "The identity of each job."
  value       = { for name, account in google_service_account.job : name => account.email }
}

output "jobs" {
  description = "Cloud Run jobs, to run by hand: gcloud run jobs execute NAME --region REGION."
  value       = { for name, job in google_cloud_run_v2_job.job : name => job.name }
}
