# terraform init -backend-config=envs/staging.backend.hcl (this configuration's state;
# the platform's is under ey-data-platform/staging/platform, ../../envs/staging.backend.hcl).
bucket = "REPLACE-ME-ey-staging-tfstate"
prefix = "ey-data-platform/staging/bootstrap"
