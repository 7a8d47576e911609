# terraform apply -var-file=envs/dev.tfvars -var project=YOUR_PROJECT -var image=IMAGE
environment         = "dev"
region              = "europe-west1"
bigquery_location   = "EU"
bucket              = "REPLACE-ME-dev-ey-data-platform-raw-data"
coldline_after_days = 30
transform_schedule  = "30 2 * * *"
