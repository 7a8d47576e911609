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
