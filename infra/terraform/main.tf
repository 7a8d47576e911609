# EY Data Platform on Google Cloud: lake (storage.tf), warehouse (bigquery.tf), bus
# (pubsub.tf), identities (iam.tf), jobs and schedules (run.tf).
data "google_project" "this" {
  project_id = var.project
}

locals {
  labels = {
    app         = "ey-data-platform"
    environment = var.environment
  }
  pubsub_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
}
