# Secret Manager secrets, readable only by the deployables that use them. Values terraform
# generates get their version here; values only the operator knows (the Twitch and OIDC
# client secrets, the SMTP password) are added once with `gcloud secrets versions add`
# (docs/deploy.md, "First deployment") and named by version number in `given`, so no secret
# value passes through variables, CI or a saved plan. `versions` names the pinned version per
# secret and is known only once the readers' grants exist, so a service referencing it
# deploys after its secret has a value and after it may read it.

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

variable "values" {
  description = "Secret name => its value, for every secret in readers that is not in given; stored as the secret's version."
  type        = map(string)
  sensitive   = true
}

variable "given" {
  description = "Secret name => the version number services read, for secrets whose value the operator adds out of band."
  type        = map(string)
  default     = {}
}

resource "google_secret_manager_secret" "secret" {
  for_each  = var.readers
  project   = var.project
  secret_id = "${var.prefix}-${each.key}"
  replication {
    auto {}
  }
}

resource "google_secret_manager_secret_version" "value" {
  for_each    = { for name, readers in var.readers : name => readers if !contains(keys(var.given), name) }
  secret      = google_secret_manager_secret.secret[each.key].id
  secret_data = var.values[each.key]
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

output "versions" {
  description = "Secret name => {secret, version}: the pinned version services read, available once the version and every reader's grant exist."
  value = merge(
    {
      for name, v in google_secret_manager_secret_version.value : name => {
        secret  = google_secret_manager_secret.secret[name].secret_id
        version = v.version
      }
    },
    {
      for name, version in var.given : name => {
        secret  = google_secret_manager_secret.secret[name].secret_id
        version = version
      } if contains(keys(var.readers), name)
    },
  )
  depends_on = [google_secret_manager_secret_iam_member.reader]
}
