# Every API the platform and its delivery use. Never disabled by Terraform: a
# destroy of this configuration must not switch off what other tools may rely on.
locals {
  services = toset([
    "artifactregistry.googleapis.com",     # the image repository
    "bigquery.googleapis.com",             # the warehouse
    "billingbudgets.googleapis.com",       # the monthly budget (budget.tf), billed to this project
    "cloudresourcemanager.googleapis.com", # project IAM
    "cloudscheduler.googleapis.com",       # the batch and transform triggers
    "iam.googleapis.com",                  # service accounts, Workload Identity pool
    "iamcredentials.googleapis.com",       # short-lived tokens for the deployer
    "logging.googleapis.com",              # Cloud Run logs, log-based metrics
    "monitoring.googleapis.com",           # alert policies, notification channels, the dashboard
    "pubsub.googleapis.com",               # the bus
    "run.googleapis.com",                  # jobs and worker pools
    "secretmanager.googleapis.com",        # the alerts webhook's secret (secrets.tf)
    "storage.googleapis.com",              # the lake, the Terraform state
    "sts.googleapis.com",                  # exchanges the GitHub token for a Google one
  ])
}

resource "google_project_service" "enabled" {
  for_each           = local.services
  service            = each.key
  disable_on_destroy = false
}
