# Cloud Tasks queues (explicit retries and rate limits) and Cloud Scheduler jobs with OIDC.

variable "project" {
  description = "Google Cloud project id."
  type        = string
}

variable "region" {
  description = "Google Cloud region."
  type        = string
}

variable "prefix" {
  description = "Name prefix for this environment."
  type        = string
}

variable "service_accounts" {
  description = "Service account email per deployable (tasks and scheduler sign the OIDC tokens)."
  type        = map(string)
}

variable "function_urls" {
  description = "Function URLs (from gcp_functions)."
  type        = map(string)
}

variable "persist_max_dispatches_per_second" {
  description = "Rate limit of the persist queue."
  type        = number
  default     = 200
}

variable "archive_schedule" {
  description = "Cron schedule (UTC) of the archive run."
  type        = string
  default     = "15 2 * * *"
}

variable "reconcile_schedule" {
  description = "Cron schedule (UTC) of the subscription reconciler."
  type        = string
  default     = "*/30 * * * *"
}

resource "google_cloud_tasks_queue" "persist" {
  project  = var.project
  location = var.region
  name     = "${var.prefix}-persist"
  rate_limits {
    max_dispatches_per_second = var.persist_max_dispatches_per_second
    max_concurrent_dispatches = 100
  }
  retry_config {
    max_attempts       = 100
    max_retry_duration = "86400s" # a day of outage is recovered without loss
    min_backoff        = "1s"
    max_backoff        = "300s"
    max_doublings      = 8
  }
}

resource "google_cloud_tasks_queue" "subscriptions" {
  project  = var.project
  location = var.region
  name     = "${var.prefix}-subscriptions"
  rate_limits {
    max_dispatches_per_second = 1
    max_concurrent_dispatches = 1
  }
  retry_config {
    max_attempts       = 20
    max_retry_duration = "3600s"
    min_backoff        = "10s"
    max_backoff        = "600s"
  }
}

# The webhook may create tasks that run as the tasks account, which alone may call persist.
resource "google_service_account_iam_member" "enqueuers_act_as_tasks" {
  for_each           = toset(["webhook", "realtime"])
  service_account_id = "projects/${var.project}/serviceAccounts/${var.service_accounts["tasks"]}"
  role               = "roles/iam.serviceAccountUser"
  member             = "serviceAccount:${var.service_accounts[each.key]}"
}

resource "google_cloud_scheduler_job" "archive" {
  project   = var.project
  region    = var.region
  name      = "${var.prefix}-archive"
  schedule  = var.archive_schedule
  time_zone = "Etc/UTC"
  # the longest Scheduler waits for an HTTP target (30 min); the function's timeout matches
  attempt_deadline = "1800s"
  http_target {
    http_method = "POST"
    uri         = var.function_urls["archive"]
    oidc_token {
      service_account_email = var.service_accounts["scheduler"]
    }
  }
  retry_config {
    retry_count = 3
  }
}

resource "google_cloud_scheduler_job" "reconcile" {
  project   = var.project
  region    = var.region
  name      = "${var.prefix}-reconcile"
  schedule  = var.reconcile_schedule
  time_zone = "Etc/UTC"
  # the subscriptions function's own timeout
  attempt_deadline = "300s"
  http_target {
    http_method = "POST"
    uri         = var.function_urls["subscriptions"]
    oidc_token {
      service_account_email = var.service_accounts["scheduler"]
    }
  }
}

output "persist_queue" {
  description = "The persist queue's name."
  value       = google_cloud_tasks_queue.persist.name
}

output "subscriptions_queue" {
  description = "The subscriptions queue's name."
  value       = google_cloud_tasks_queue.subscriptions.name
}
