# terraform init -backend-config=envs/prod.backend.hcl
# terraform apply -var-file=envs/prod.tfvars -var image=REGISTRY/ey-platform@sha256:DIGEST
# Replace every REPLACE-ME first; project, region, bigquery_location and bucket must
# match bootstrap/envs/prod.tfvars.
project           = "REPLACE-ME-ey-prod"
environment       = "prod"
region            = "europe-west1"
bigquery_location = "EU"
bucket            = "REPLACE-ME-ey-prod-raw-data"
# Who Cloud Monitoring's alerts notify (monitoring.tf), e.g.
# alert_emails = ["data-oncall@example.com"]; a webhook comes from TF_VAR_alert_webhook_url.
# The monthly budget is bootstrap/'s (bootstrap/envs/prod.tfvars).
# The application's own chat alerts: alerts_webhook = true once the secret
# ey-alerts-webhook has a version (gcloud secrets versions add ey-alerts-webhook --data-file=-).
