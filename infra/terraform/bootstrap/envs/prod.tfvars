# The owner's one-time setup of prod (README, Deployment):
#   terraform init -backend-config=envs/prod.backend.hcl
#   terraform apply -var-file=envs/prod.tfvars
# Replace every REPLACE-ME first; project, region, bigquery_location and bucket must
# match ../../envs/prod.tfvars.
project             = "REPLACE-ME-ey-prod"
environment         = "prod"
region              = "europe-west1"
bigquery_location   = "EU"
bucket              = "REPLACE-ME-ey-prod-raw-data"
coldline_after_days = 90
github_repository   = "REPLACE-ME/ey-data-platform"
state_bucket        = "REPLACE-ME-ey-prod-tfstate"
# The billing account of prod's project, for its monthly budget (budget.tf); who else
# its thresholds notify, e.g. budget_emails = ["data-oncall@example.com"].
billing_account = "REPLACE-ME-XXXXXX-XXXXXX-XXXXXX"
