terraform {
  required_version = ">= 1.5"
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 7.0, < 8.0"
    }
  }
  # Partial configuration: bucket and prefix come from envs/ENV.backend.hcl
  # (terraform init -backend-config=envs/prod.backend.hcl).
  backend "gcs" {}
}

provider "google" {
  project = var.project
  region  = var.region
}

# The Billing Budget API refuses calls with user credentials (gcloud auth
# application-default login) that name no quota project: the budget's calls are billed
# to this project, whose billingbudgets API apis.tf enables.
provider "google" {
  alias                 = "billing"
  project               = var.project
  region                = var.region
  billing_project       = var.project
  user_project_override = true
}
