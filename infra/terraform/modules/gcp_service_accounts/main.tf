# One service account per deployable, each with only the project roles it uses.

variable "project" {
  description = "Google Cloud project id."
  type        = string
}

variable "prefix" {
  description = "Name prefix for every resource of this environment (lowercase, short)."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,14}$", var.prefix))
    error_message = "prefix: 2-15 characters, lowercase letters, digits and dashes."
  }
}

locals {
  # deployable => project roles; resource-level grants (invokers, secrets) live with the resources
  roles = {
    webhook       = ["roles/datastore.user", "roles/cloudtasks.enqueuer", "roles/logging.logWriter"]
    persist       = ["roles/cloudsql.client", "roles/cloudtasks.enqueuer", "roles/logging.logWriter"]
    subscriptions = ["roles/cloudsql.client", "roles/logging.logWriter"]
    archive       = ["roles/cloudsql.client", "roles/logging.logWriter"]
    realtime      = ["roles/cloudsql.client", "roles/cloudtasks.enqueuer", "roles/logging.logWriter"]
    # pulse and notify enqueue notification tasks (re-dispatch; a 429's later attempt)
    pulse     = ["roles/cloudsql.client", "roles/cloudtasks.enqueuer", "roles/logging.logWriter"]
    notify    = ["roles/cloudsql.client", "roles/cloudtasks.enqueuer", "roles/logging.logWriter"]
    tasks     = []
    scheduler = []
    notifier  = [] # the identity notification tasks present to functions/notify (OIDC)
  }
  bindings = flatten([for name, roles in local.roles : [for role in roles : { name = name, role = role }]])
}

resource "google_service_account" "deployable" {
  for_each     = local.roles
  project      = var.project
  account_id   = "${var.prefix}-${each.key}"
  display_name = "Creator Control Room ${each.key}"
}

resource "google_project_iam_member" "role" {
  for_each = { for b in local.bindings : "${b.name}/${b.role}" => b }
  project  = var.project
  role     = each.value.role
  member   = "serviceAccount:${google_service_account.deployable[each.value.name].email}"
}

output "emails" {
  description = "Service account email per deployable."
  value       = { for name, sa in google_service_account.deployable : name => sa.email }
}

output "unique_ids" {
  description = "Numeric unique id per deployable (the subject AWS web identity federation trusts)."
  value       = { for name, sa in google_service_account.deployable : name => sa.unique_id }
}
