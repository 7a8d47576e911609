# The owner's one-time setup of dev (README, Deployment):
#   terraform init -backend-config=envs/dev.backend.hcl
#   terraform apply -var-file=envs/dev.tfvars
# Replace every REPLACE-ME first; project, region, bigquery_location and bucket must
# match ../../envs/dev.tfvars.
project             = "REPLACE-ME-ey-dev"
environment         = "dev"
region              = "europe-west1"
bigquery_location   = "EU"
bucket              = "REPLACE-ME-ey-dev-raw-data"
coldline_after_days = 30
github_repository   = "REPLACE-ME/ey-data-platform"
state_bucket        = "REPLACE-ME-ey-dev-tfstate"
