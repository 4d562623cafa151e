# Secret Manager secrets (values are added out of band: see docs/deploy.md), readable only
# by the deployables that use them.

variable "project" {
  description = "Google Cloud project id."
  type        = string
}

variable "prefix" {
  description = "Name prefix for this environment."
  type        = string
}

variable "readers" {
  description = "Secret name => service account emails allowed to read it."
  type        = map(list(string))
}

resource "google_secret_manager_secret" "secret" {
  for_each  = var.readers
  project   = var.project
  secret_id = "${var.prefix}-${each.key}"
  replication {
    auto {}
  }
}

resource "google_secret_manager_secret_iam_member" "reader" {
  for_each = merge([for name, emails in var.readers : {
    for email in emails : "${name}/${email}" => { name = name, email = email }
  }]...)
  project   = var.project
  secret_id = google_secret_manager_secret.secret[each.value.name].secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${each.value.email}"
}

output "ids" {
  description = "Secret id per name."
  value       = { for name, s in google_secret_manager_secret.secret : name => s.secret_id }
}
