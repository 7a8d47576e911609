# terraform apply -var-file=envs/prod.tfvars -var project=YOUR_PROJECT -var image=IMAGE
environment         = "prod"
region              = "europe-west1"
bigquery_location   = "EU"
bucket              = "ey-data-platform-raw-data"
coldline_after_days = 90
