# What everything else needs first (docs/deploy.md, "First deployment", step 2): the Google
# APIs the code and terraform call, the Artifact Registry repository CI pushes the realtime
# image to, and the deploy service account CI acts as, reachable only from the GitHub
# repository's workflows through a workload identity pool (no keys).

variable "project" {
  description = "Google Cloud project id."
  type        = string
}

variable "region" {
  description = "Google Cloud region (the Artifact Registry repository's)."
  type        = string
}

variable "prefix" {
  description = "Name prefix for this environment."
  type        = string
}

variable "github_repository" {
  description = "owner/name of the GitHub repository whose workflows may deploy (the provider refuses every other repository's tokens)."
  type        = string
  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", var.github_repository))
    error_message = "github_repository must look like owner/name."
  }
}

variable "cloud_sql" {
  description = "Whether Cloud SQL is the database (its Admin API and private services access are then enabled)."
  type        = bool
  default     = false
}

locals {
  services = concat([
    "cloudresourcemanager.googleapis.com", # terraform reads and sets project IAM
    "serviceusage.googleapis.com",
    "iam.googleapis.com",
    "iamcredentials.googleapis.com", # ID tokens for AWS, CI impersonation
    "sts.googleapis.com",            # workload identity federation (CI)
    "run.googleapis.com",
    "cloudfunctions.googleapis.com",
    "cloudbuild.googleapis.com", # builds the functions' sources
    "artifactregistry.googleapis.com",
    "cloudtasks.googleapis.com",
    "cloudscheduler.googleapis.com",
    "secretmanager.googleapis.com",
    "firestore.googleapis.com",
    "redis.googleapis.com",
    "vpcaccess.googleapis.com",
    "compute.googleapis.com", # HA VPN, Cloud Router
    "storage.googleapis.com", # the functions' source bucket
    "monitoring.googleapis.com",
    "logging.googleapis.com",
    ], var.cloud_sql ? [
    "sqladmin.googleapis.com",
    "servicenetworking.googleapis.com",
  ] : [])
  # what `terraform apply` of envs/<env> creates and changes, and the image push
  deploy_roles = [
    "roles/artifactregistry.writer",
    "roles/cloudfunctions.admin",
    "roles/run.admin",
    "roles/cloudtasks.admin",
    "roles/cloudscheduler.admin",
    "roles/secretmanager.admin",
    "roles/redis.admin",
    "roles/datastore.owner",
    "roles/vpcaccess.admin",
    "roles/compute.networkAdmin",
    "roles/storage.admin",
    "roles/iam.serviceAccountAdmin",
    "roles/iam.serviceAccountUser",
    "roles/iam.workloadIdentityPoolAdmin",
    "roles/resourcemanager.projectIamAdmin",
    "roles/serviceusage.serviceUsageAdmin",
    "roles/monitoring.admin",
    "roles/logging.configWriter",
    "roles/cloudsql.admin",
    "roles/servicenetworking.networksAdmin",
  ]
}

resource "google_project_service" "api" {
  for_each           = toset(local.services)
  project            = var.project
  service            = each.value
  disable_on_destroy = false
}

resource "google_artifact_registry_repository" "images" {
  # checkov:skip=CKV_GCP_84: Google-managed encryption keys, as for every other resource of the product; a customer-managed key is an organization-wide decision
  project       = var.project
  location      = var.region
  repository_id = "${var.prefix}-images"
  format        = "DOCKER"
  description   = "Container images of the realtime service (deployed by digest)"
  docker_config {
    immutable_tags = true
  }
  depends_on = [google_project_service.api]
}

resource "google_service_account" "deploy" {
  project      = var.project
  account_id   = "${var.prefix}-deploy"
  display_name = "Creator Control Room deploy (GitHub Actions)"
  depends_on   = [google_project_service.api]
}

resource "google_project_iam_member" "deploy" {
  # checkov:skip=CKV_GCP_41: the deploy identity creates the deployables' service accounts and attaches them to functions and services, which needs Service Account User
  # checkov:skip=CKV_GCP_49: the deploy identity manages the project's IAM for the deployables (terraform); only the repository's workflows can act as it
  for_each = toset(local.deploy_roles)
  project  = var.project
  role     = each.value
  member   = "serviceAccount:${google_service_account.deploy.email}"
}

resource "google_iam_workload_identity_pool" "github" {
  project                   = var.project
  workload_identity_pool_id = "${var.prefix}-github"
  display_name              = "GitHub Actions"
  description               = "Workflows of ${var.github_repository}"
  depends_on                = [google_project_service.api]
}

resource "google_iam_workload_identity_pool_provider" "github" {
  # checkov:skip=CKV_GCP_125: attribute_condition admits exactly one repository (assertion.repository == github_repository), which checkov cannot resolve from a variable
  project                            = var.project
  workload_identity_pool_id          = google_iam_workload_identity_pool.github.workload_identity_pool_id
  workload_identity_pool_provider_id = "github"
  display_name                       = "GitHub OIDC"
  attribute_mapping = {
    "google.subject"       = "assertion.sub"
    "attribute.repository" = "assertion.repository"
    "attribute.ref"        = "assertion.ref"
  }
  # GitHub's issuer is shared by every repository: only this one's tokens are accepted
  attribute_condition = "assertion.repository == '${var.github_repository}'"
  oidc {
    issuer_uri = "https://token.actions.githubusercontent.com"
  }
}

resource "google_service_account_iam_member" "deploy_from_github" {
  service_account_id = google_service_account.deploy.name
  role               = "roles/iam.workloadIdentityUser"
  member             = "principalSet://iam.googleapis.com/${google_iam_workload_identity_pool.github.name}/attribute.repository/${var.github_repository}"
}

output "services" {
  description = "The APIs enabled (other modules depend on this module so they wait for them)."
  value       = [for s in google_project_service.api : s.service]
}

output "image_repository" {
  description = "Where CI pushes the realtime image: <region>-docker.pkg.dev/<project>/<repository>."
  value       = "${var.region}-docker.pkg.dev/${var.project}/${google_artifact_registry_repository.images.repository_id}"
}

output "deploy_service_account" {
  description = "The deploy service account's email (CI's service_account)."
  value       = google_service_account.deploy.email
}

output "workload_identity_provider" {
  description = "Full name of the GitHub provider (CI's workload_identity_provider)."
  value       = google_iam_workload_identity_pool_provider.github.name
}
