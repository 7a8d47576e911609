# What only a project owner applies, once per environment and again only when who may
# do what changes: the APIs (apis.tf), the identities and every grant outside the
# platform's own resources (iam.tf), the GitHub Actions trust and the CI deployer
# (deployer.tf), the image repository (registry.tf), the stores of data whose loss
# would be a loss of data (storage.tf, bigquery.tf), the secret of the alerts webhook
# (secrets.tf), and the monthly budget (budget.tf), which takes a role on the billing
# account. The CI deployer applies the platform (infra/terraform) and can change none
# of this.
locals {
  labels = {
    app         = "ey-data-platform"
    environment = var.environment
  }
  # The platform's state under the state bucket: the deployer may read and write
  # these objects and no others (envs/ENV.backend.hcl of infra/terraform sets it).
  platform_state_prefix = "ey-data-platform/${var.environment}/platform"
}
