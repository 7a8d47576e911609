# The CLI image. Each environment's project has its own repository: the deployer of
# an environment pushes there only, and Cloud Run pulls from its own project. A
# release pushes the same manifest to each repository, so the digest tested in dev
# is the digest applied in prod. Tags cannot move: a deployment names a digest.
resource "google_artifact_registry_repository" "ey" {
  #checkov:skip=CKV_GCP_84:Google-managed encryption; a customer key (CMEK) is an organisation decision this project does not impose.
  repository_id = "ey"
  location      = var.region
  format        = "DOCKER"
  description   = "ey-platform CLI images, by digest."
  labels        = local.labels

  docker_config {
    immutable_tags = true
  }

  depends_on = [google_project_service.enabled]
}
