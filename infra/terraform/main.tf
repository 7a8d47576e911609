# EY Data Platform on Google Cloud, one project per environment: warehouse tables
# (bigquery.tf), bus (pubsub.tf), jobs, worker pools and schedules (run.tf), and the
# grants on them (iam.tf). The CI deployer applies this configuration. The APIs, the
# identities, the lake bucket, the datasets and the deployer itself come first, from
# bootstrap/, applied by a project owner. Names carry no environment: the project is
# the environment.
data "google_project" "this" {
  project_id = var.project
}

locals {
  labels = {
    app         = "ey-data-platform"
    environment = var.environment
  }
  # The identities bootstrap/iam.tf creates (account id ey-NAME).
  identities   = toset(["batch", "poller", "consumer", "transform", "scheduler"])
  email        = { for name in local.identities : name => "ey-${name}@${var.project}.iam.gserviceaccount.com" }
  sa           = { for name, email in local.email : name => "serviceAccount:${email}" }
  pubsub_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
}
