# terraform init -backend-config=envs/dev.backend.hcl (this configuration's state;
# the platform's is under ey-data-platform/dev/platform, ../../envs/dev.backend.hcl).
bucket = "REPLACE-ME-ey-dev-tfstate"
prefix = "ey-data-platform/dev/bootstrap"
