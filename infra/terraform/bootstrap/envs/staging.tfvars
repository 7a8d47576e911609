# The owner's one-time setup of staging (README, Deployment):
#   terraform init -backend-config=envs/staging.backend.hcl
#   terraform apply -var-file=envs/staging.tfvars
# Replace every REPLACE-ME first; project, region, bigquery_location and bucket must
# match ../../envs/staging.tfvars.
project             = "REPLACE-ME-ey-staging"
environment         = "staging"
region              = "europe-west1"
bigquery_location   = "EU"
bucket              = "REPLACE-ME-ey-staging-raw-data"
coldline_after_days = 90
github_repository   = "REPLACE-ME/ey-data-platform"
state_bucket        = "REPLACE-ME-ey-staging-tfstate"
