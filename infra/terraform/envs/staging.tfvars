# terraform init -backend-config=envs/staging.backend.hcl
# terraform apply -var-file=envs/staging.tfvars -var image=REGISTRY/ey-platform@sha256:DIGEST
# Replace every REPLACE-ME first; project, region, bigquery_location and bucket must
# match bootstrap/envs/staging.tfvars.
project           = "REPLACE-ME-ey-staging"
environment       = "staging"
region            = "europe-west1"
bigquery_location = "EU"
bucket            = "REPLACE-ME-ey-staging-raw-data"
# The application's own chat alerts: alerts_webhook = true once the secret
# ey-alerts-webhook has a version (gcloud secrets versions add ey-alerts-webhook --data-file=-).
