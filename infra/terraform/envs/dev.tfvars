# terraform init -backend-config=envs/dev.backend.hcl
# terraform apply -var-file=envs/dev.tfvars -var image=REGISTRY/ey-platform@sha256:DIGEST
# Replace every REPLACE-ME first; project, region, bigquery_location and bucket must
# match bootstrap/envs/dev.tfvars.
project            = "REPLACE-ME-ey-dev"
environment        = "dev"
region             = "europe-west1"
bigquery_location  = "EU"
bucket             = "REPLACE-ME-ey-dev-raw-data"
transform_schedule = "30 2 * * *"
# The application's own chat alerts: alerts_webhook = true once the secret
# ey-alerts-webhook has a version (gcloud secrets versions add ey-alerts-webhook --data-file=-).
