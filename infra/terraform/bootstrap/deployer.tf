# The CI deployer: GitHub Actions of one repository, in this environment's GitHub
# Environment (and for prod, on main only), exchanges its OIDC token for a short-lived
# token of ey-deployer. No key exists. The deployer applies infra/terraform and runs
# the smoke checks; it cannot change its own rights, the trust below, the identities
# or anything else in this configuration.
resource "google_iam_workload_identity_pool" "github" {
  workload_identity_pool_id = "github"
  display_name              = "GitHub Actions"
  description               = "OIDC tokens of GitHub Actions runs."
  depends_on                = [google_project_service.enabled]
}

# The subject of a GitHub job that names an environment is
# repo:OWNER/NAME:environment:ENV: one repository and this environment's GitHub
# Environment, whose protection rules (reviewers, branches) apply before the token is
# issued. Prod also requires the main branch.
locals {
  github_conditions = concat(
    ["assertion.sub == 'repo:${var.github_repository}:environment:${var.environment}'"],
    var.environment == "prod" ? ["assertion.ref == 'refs/heads/main'"] : [],
  )
}

resource "google_iam_workload_identity_pool_provider" "github" {
  #checkov:skip=CKV_GCP_125:The condition is local.github_conditions (assertion.sub of one repository and GitHub Environment, main for prod), which checkov cannot evaluate without the tfvars; tests/unit/test_terraform.py evaluates it with terraform for each environment.
  workload_identity_pool_id          = google_iam_workload_identity_pool.github.workload_identity_pool_id
  workload_identity_pool_provider_id = "github-actions"
  display_name                       = "GitHub Actions"
  attribute_mapping = {
    "google.subject"        = "assertion.sub"
    "attribute.repository"  = "assertion.repository"
    "attribute.ref"         = "assertion.ref"
    "attribute.environment" = "assertion.environment"
  }
  # Tokens of any other repository, GitHub Environment or (for prod) branch are refused.
  attribute_condition = join(" && ", local.github_conditions)
  oidc {
    issuer_uri = "https://token.actions.githubusercontent.com"
  }
}

resource "google_service_account" "deployer" {
  account_id   = "ey-deployer"
  display_name = "CI deployer: terraform apply of infra/terraform, smoke runs"
  depends_on   = [google_project_service.enabled]
}

resource "google_service_account_iam_member" "deployer_from_github" {
  service_account_id = google_service_account.deployer.name
  role               = "roles/iam.workloadIdentityUser"
  member             = "principalSet://iam.googleapis.com/${google_iam_workload_identity_pool.github.name}/attribute.repository/${var.github_repository}"
}

# What applying infra/terraform needs, and nothing more. No project IAM admin: every
# project-level grant is in this configuration, applied by an owner. No billing role:
# the budget is here too (budget.tf). The datasets' grants are in iam.tf
# (raw_dataset_grants, analytics_dataset_grants, build_dataset_grants, ci_dataset_grants).
locals {
  deployer_project_grants = {
    run       = { identity = "deployer", role = "roles/run.developer" }        # jobs and worker pools, their revisions, the smoke executions
    scheduler = { identity = "deployer", role = "roles/cloudscheduler.admin" } # the triggers (no narrower role creates them)
    pubsub    = { identity = "deployer", role = "roles/pubsub.admin" }         # topics, subscriptions and the grants on them (pubsub.editor sets no IAM)
    queries   = { identity = "deployer", role = "roles/bigquery.jobUser" }     # the smoke run's row counts, dbt in CI
    # Cloud Monitoring of the platform (monitoring.tf): the narrowest predefined role for
    # each kind of resource it creates.
    alerts      = { identity = "deployer", role = "roles/monitoring.alertPolicyEditor" }         # the alert policies
    channels    = { identity = "deployer", role = "roles/monitoring.notificationChannelEditor" } # their email and webhook channels
    dashboard   = { identity = "deployer", role = "roles/monitoring.dashboardEditor" }           # the dashboard
    log_metrics = { identity = "deployer", role = "roles/logging.configWriter" }                 # the log-based metrics (no narrower role; it writes sinks and exclusions too)
  }
}

resource "google_project_iam_member" "deployer" {
  #checkov:skip=CKV_GCP_42:Cloud Scheduler and Pub/Sub admin in this environment's own project: creating triggers and setting the topics' IAM have no narrower predefined role.
  for_each = local.deployer_project_grants
  project  = var.project
  role     = each.value.role
  member   = local.sa[each.value.identity]
}

# Deploying a job, worker pool or trigger that runs as an identity needs actAs on it.
resource "google_service_account_iam_member" "deployer_acts_as" {
  for_each           = google_service_account.job
  service_account_id = each.value.name
  role               = "roles/iam.serviceAccountUser"
  member             = local.sa.deployer
}

resource "google_artifact_registry_repository_iam_member" "deployer_pushes" {
  repository = google_artifact_registry_repository.ey.name
  location   = google_artifact_registry_repository.ey.location
  role       = "roles/artifactregistry.writer"
  member     = local.sa.deployer
}

# The platform's state and lock, and no other object of the state bucket: this
# configuration's own state is out of the deployer's reach. Listing is a bucket-level
# permission, hence the first clause.
resource "google_storage_bucket_iam_member" "deployer_state" {
  bucket = var.state_bucket
  role   = "roles/storage.objectAdmin"
  member = local.sa.deployer
  condition {
    title       = "platform-state-only"
    description = "Objects under ${local.platform_state_prefix}/ only."
    expression  = "resource.type == 'storage.googleapis.com/Bucket' || resource.name.startsWith('projects/_/buckets/${var.state_bucket}/objects/${local.platform_state_prefix}/')"
  }
}
