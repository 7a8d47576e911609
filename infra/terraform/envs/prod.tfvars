# terraform init -backend-config=envs/prod.backend.hcl
# terraform apply -var-file=envs/prod.tfvars -var image=REGISTRY/ey-platform@sha256:DIGEST
# Replace every REPLACE-ME first; project, region, bigquery_location and bucket must
# match bootstrap/envs/prod.tfvars.
project           = "REPLACE-ME-ey-prod"
environment       = "prod"
region            = "europe-west1"
bigquery_location = "EU"
bucket            = "REPLACE-ME-ey-prod-raw-data"
