# terraform init -backend-config=envs/dev.backend.hcl: the state of dev, in the state
# bucket of dev's project (bootstrap/envs/dev.backend.hcl keeps the owner's state
# under ey-data-platform/dev/bootstrap, out of the deployer's reach).
bucket = "REPLACE-ME-ey-dev-tfstate"
prefix = "ey-data-platform/dev/platform"
