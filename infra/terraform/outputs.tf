# What the application's settings and the deploy workflow need (see README, Deployment).
output "settings" {
  description = "EYP_* settings for a manual run against this environment."
  value       = local.settings
}

output "service_accounts" {
  description = "The identity of each workload."
  value       = local.email
}

output "jobs" {
  description = "Cloud Run jobs, to run by hand: gcloud run jobs execute NAME --region REGION --wait."
  value       = { for name, job in google_cloud_run_v2_job.job : name => job.name }
}

output "worker_pools" {
  description = "Cloud Run worker pools of the poller and the consumer."
  value       = { for name, pool in google_cloud_run_v2_worker_pool.worker : name => pool.name }
}

output "image" {
  description = "The image digest every job and worker pool runs: the one to roll back to."
  value       = var.image
}

output "dashboard" {
  description = "The Cloud Monitoring dashboard (jobs, backlog, rows loaded, freshness)."
  value       = "https://console.cloud.google.com/monitoring/dashboards/builder/${element(split("/", google_monitoring_dashboard.platform.id), 3)}?project=${var.project}"
}

output "alert_policies" {
  description = "The alert policies, by key of local.alert_policies (monitoring.tf)."
  value       = { for key, policy in google_monitoring_alert_policy.policy : key => policy.name }
}
