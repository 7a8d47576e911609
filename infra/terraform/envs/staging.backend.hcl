# terraform init -backend-config=envs/staging.backend.hcl: the state of staging, in the state
# bucket of staging's project (bootstrap/envs/staging.backend.hcl keeps the owner's state
# under ey-data-platform/staging/bootstrap, out of the deployer's reach).
bucket = "REPLACE-ME-ey-staging-tfstate"
prefix = "ey-data-platform/staging/platform"
