# terraform init -backend-config=envs/prod.backend.hcl (this configuration's state;
# the platform's is under ey-data-platform/prod/platform, ../../envs/prod.backend.hcl).
bucket = "REPLACE-ME-ey-prod-tfstate"
prefix = "ey-data-platform/prod/bootstrap"
