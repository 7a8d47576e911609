# terraform init -backend-config=envs/prod.backend.hcl: the state of prod, in the state
# bucket of prod's project (bootstrap/envs/prod.backend.hcl keeps the owner's state
# under ey-data-platform/prod/bootstrap, out of the deployer's reach).
bucket = "REPLACE-ME-ey-prod-tfstate"
prefix = "ey-data-platform/prod/platform"
