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
  description = "Rate limit of the persist queue (Cloud Tasks allows at most 500 per queue; docs/capacity.md)."
  type        = number
  default     = 500

  validation {
    condition     = var.persist_max_dispatches_per_second > 0 && var.persist_max_dispatches_per_second <= 500
    error_message = "Cloud Tasks dispatches at most 500 tasks per second from one queue."
  }
}

variable "persist_queue_shards" {
  description = "Persist queues the webhook spreads deliveries over (docs/capacity.md): <prefix>-persist, then -persist-1 ... Each dispatches at most 500/s."
  type        = number
  default     = 1

  validation {
    condition     = var.persist_queue_shards >= 1 && var.persist_queue_shards <= 50 && floor(var.persist_queue_shards) == var.persist_queue_shards
    error_message = "persist_queue_shards is a whole number from 1 to 50."
  }
}

variable "archive_schedule" {
  description = "Cron schedule (UTC) of the archive run."
  type        = string
  default     = "15 2 * * *"
}

variable "pulse_schedule" {
  description = "Cron schedule (UTC) of the audience pulse (Get Streams for every watched creator)."
  type        = string
  default     = "* * * * *"
}

variable "reconcile_schedule" {
  description = "Cron schedule (UTC) of the subscription reconciler."
  type        = string
  default     = "*/30 * * * *"
}

# The first keeps the name (and the tasks) of the single queue it was; the webhook picks a
# shard from the task's name (CLOUD_TASKS_QUEUE_SHARDS), so copies of a delivery meet.
resource "google_cloud_tasks_queue" "persist" {
  count    = var.persist_queue_shards
  project  = var.project
  location = var.region
  name     = count.index == 0 ? "${var.prefix}-persist" : "${var.prefix}-persist-${count.index}"
  rate_limits {
    max_dispatches_per_second = var.persist_max_dispatches_per_second
    # persist's request slots: 20 instances x 16 concurrent requests (gcp_functions), shared
    # by the shards (raise persist's max instances with them)
    max_concurrent_dispatches = ceil(320 / var.persist_queue_shards)
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

# Notification posts (functions/notify): one task per delivery. Retries back off from 5 s to
# 10 min and stop after a day (a delivery older than that is given up); a 429's Retry-After
# longer than a retry is honored by a new task scheduled at that time.
resource "google_cloud_tasks_queue" "notify" {
  project  = var.project
  location = var.region
  name     = "${var.prefix}-notify"
  rate_limits {
    max_dispatches_per_second = 10
    max_concurrent_dispatches = 20
  }
  retry_config {
    max_attempts       = -1 # unlimited: max_retry_duration ends them
    max_retry_duration = "86400s"
    min_backoff        = "5s"
    max_backoff        = "600s"
    max_doublings      = 5
  }
}

# Whoever enqueues notification tasks names the notifier account, which alone may call notify.
resource "google_service_account_iam_member" "enqueuers_act_as_notifier" {
  for_each           = toset(["persist", "pulse", "notify", "realtime"])
  service_account_id = "projects/${var.project}/serviceAccounts/${var.service_accounts["notifier"]}"
  role               = "roles/iam.serviceAccountUser"
  member             = "serviceAccount:${var.service_accounts[each.key]}"
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

# The audience pulse: a run a minute; a missed run is not retried (the next one is due).
resource "google_cloud_scheduler_job" "pulse" {
  project   = var.project
  region    = var.region
  name      = "${var.prefix}-pulse"
  schedule  = var.pulse_schedule
  time_zone = "Etc/UTC"
  # under the minute, so a slow run ends before the next is due
  attempt_deadline = "50s"
  http_target {
    http_method = "POST"
    uri         = var.function_urls["pulse"]
    oidc_token {
      service_account_email = var.service_accounts["scheduler"]
    }
  }
  retry_config {
    retry_count = 0
  }
}

moved {
  from = google_cloud_tasks_queue.persist
  to   = google_cloud_tasks_queue.persist[0]
}

output "persist_queue" {
  description = "The persist queue's name (the first shard's, when there are several)."
  value       = google_cloud_tasks_queue.persist[0].name
}

output "persist_queues" {
  description = "Every persist queue's name, in shard order."
  value       = google_cloud_tasks_queue.persist[*].name
}

output "subscriptions_queue" {
  description = "The subscriptions queue's name."
  value       = google_cloud_tasks_queue.subscriptions.name
}

output "notify_queue" {
  description = "The notify queue's name."
  value       = google_cloud_tasks_queue.notify.name
}
