# Observability as code on Google Cloud: log-based metrics made from the JSON lines the
# deployables write (controlroom/logs.py), alert policies on them and on the platform's own
# metrics (Cloud Run, Cloud Tasks, uptime), one dashboard. Each alert's display name is a
# row of docs/operations.md, "Alerts and what they mean", which says what to do first.
#
# The Google provider cannot be fetched on the development machine: this module is checked
# by `terraform fmt` and checkov only (docs/deploy.md, "Monitoring").

variable "project" {
  description = "Google Cloud project id."
  type        = string
}

variable "prefix" {
  description = "Name prefix for this environment (services are named <prefix>-<deployable>)."
  type        = string
}

variable "realtime_host" {
  description = "Public host name of the realtime service (no scheme, no path) for the /healthz uptime check."
  type        = string
  validation {
    condition     = can(regex("^[A-Za-z0-9.-]+$", var.realtime_host))
    error_message = "realtime_host is a bare host name, e.g. controlroom.agency.example."
  }
}

variable "persist_queue" {
  description = "Name of the persist Cloud Tasks queue (gcp_messaging's persist_queue output)."
  type        = string
}

variable "notification_emails" {
  description = "Addresses every alert is mailed to; empty: alerts open incidents in the console only."
  type        = list(string)
  default     = []
}

variable "cloud_sql_instance" {
  description = "Name of the Cloud SQL instance when the database is cloud_sql (adds its alerts); empty with aurora (CloudWatch watches it: aws_monitoring)."
  type        = string
  default     = ""
}

variable "queue_depth_threshold" {
  description = "Tasks waiting in the persist queue, held for 5 minutes, that raise \"Queue backlog\"."
  type        = number
  default     = 1000
}

variable "queue_delay_seconds" {
  description = "p99 of the persist queue's dispatch delay, held for 5 minutes, that raises \"Queue delay\"."
  type        = number
  default     = 120
}

variable "webhook_refusals_per_minute" {
  description = "4xx answers of the webhook per minute, held for 5 minutes, that raise \"Webhook refusals\"."
  type        = number
  default     = 10
}

variable "slow_clients_per_5_minutes" {
  description = "Sockets cut off for not reading, within 5 minutes, that raise \"Slow clients\"."
  type        = number
  default     = 50
}

locals {
  services = {
    webhook  = "${var.prefix}-webhook"
    persist  = "${var.prefix}-persist"
    realtime = "${var.prefix}-realtime"
  }

  # Every deployable runs on Cloud Run (the functions are 2nd gen), and Cloud Run turns each
  # JSON line on stderr into a jsonPayload: `message` and the fields of `logs.fields(...)`.
  ours = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=~\"^${var.prefix}-\""

  service_label = { path = "resource.labels.service_name", description = "The Cloud Run service (function) that logged it." }
  message_label = { path = "jsonPayload.message", description = "The log message (one of the few the filter admits)." }

  # name => what it counts, the filter, and labels extracted from each line
  log_metrics = {
    request-refused = {
      description = "Expected errors answered by the one error table (controlroom/edge.py): 4xx and 503, by cause."
      filter      = "${local.ours} AND jsonPayload.message=\"request refused\""
      labels = {
        service = local.service_label
        status  = { path = "jsonPayload.status", description = "The HTTP status answered." }
        cause   = { path = "jsonPayload.cause", description = "The error table's row, e.g. ForgedDeliveryError." }
      }
    }
    unexpected-errors = {
      description = "Errors logged with a traceback and answered 500, misconfigurations, and relay reconcile bugs."
      filter      = "${local.ours} AND (jsonPayload.message=\"unexpected error\" OR jsonPayload.message=~\"^misconfigured: \" OR jsonPayload.message=\"reconcile failed\")"
      labels = {
        service = local.service_label
        logger  = { path = "jsonPayload.logger", description = "The logger that wrote it." }
      }
    }
    dead-letters = {
      description = "Deliveries persist could not decode or normalize, kept in ingest_dead_letters and acknowledged."
      filter      = "${local.ours} AND jsonPayload.message=\"delivery dead-lettered\""
      labels      = { service = local.service_label }
    }
    database-errors = {
      description = "PostgreSQL unreachable or failing: persist's 503s, refused sockets, skipped reconciles and failed replays."
      filter      = "${local.ours} AND ((jsonPayload.message=\"request refused\" AND (jsonPayload.cause=\"StoreUnavailableError\" OR jsonPayload.cause=\"OperationalError\")) OR (jsonPayload.message=\"connection refused: database unavailable\" OR jsonPayload.message=\"reconcile skipped\" OR jsonPayload.message=\"replay failed; disconnecting\"))"
      labels = {
        service = local.service_label
        message = local.message_label
      }
    }
    redis-errors = {
      description = "Redis unreachable: publishes skipped, rate limits failing open, the Socket.IO manager reconnecting."
      filter      = "${local.ours} AND ((jsonPayload.message=\"publish skipped: dashboards will catch up from PostgreSQL\" OR jsonPayload.message=\"rate limit store unavailable; requests pass unlimited\" OR jsonPayload.message=\"creator state not pushed\") OR jsonPayload.message=~\"^Cannot (publish to|receive from) redis\")"
      labels = {
        service = local.service_label
        message = local.message_label
      }
    }
    relay-sockets = {
      description = "The relay's socket events: refusals (rate limit, database), slow clients cut off, members removed."
      filter      = "${local.ours} AND (jsonPayload.message=\"socket refused: rate limited\" OR jsonPayload.message=\"connection refused: database unavailable\" OR jsonPayload.message=\"slow client disconnected\" OR jsonPayload.message=\"member removed; socket closed\" OR jsonPayload.message=\"company suspended; socket closed\" OR jsonPayload.message=\"replay failed; disconnecting\")"
      labels      = { message = local.message_label }
    }
    archive-failures = {
      description = "Archive days that did not export and company purges that failed (both retried by the next run)."
      filter      = "${local.ours} AND (jsonPayload.message=\"archive day failed\" OR jsonPayload.message=\"company purge failed\")"
      labels      = { message = local.message_label }
    }
  }
}

resource "google_logging_metric" "log" {
  for_each    = local.log_metrics
  project     = var.project
  name        = "${var.prefix}-${each.key}"
  description = each.value.description
  filter      = each.value.filter
  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "${var.prefix} ${each.key}"
    dynamic "labels" {
      for_each = each.value.labels
      content {
        key         = labels.key
        value_type  = "STRING"
        description = labels.value.description
      }
    }
  }
  label_extractors = { for key, label in each.value.labels : key => "EXTRACT(${label.path})" }
}

resource "google_monitoring_notification_channel" "email" {
  for_each     = toset(var.notification_emails)
  project      = var.project
  display_name = "${var.prefix} alerts: ${each.value}"
  type         = "email"
  labels = {
    email_address = each.value
  }
}

resource "google_monitoring_uptime_check_config" "healthz" {
  project      = var.project
  display_name = "${var.prefix} realtime /healthz"
  timeout      = "10s"
  period       = "60s"
  http_check {
    path           = "/healthz"
    port           = 443
    use_ssl        = true
    validate_ssl   = true
    request_method = "GET"
    accepted_response_status_codes {
      status_class = "STATUS_CLASS_2XX"
    }
  }
  monitored_resource {
    type = "uptime_url"
    labels = {
      project_id = var.project
      host       = var.realtime_host
    }
  }
}

locals {
  user_metric  = { for key, m in google_logging_metric.log : key => "metric.type=\"logging.googleapis.com/user/${m.name}\" AND resource.type=\"cloud_run_revision\"" }
  run_requests = "metric.type=\"run.googleapis.com/request_count\" AND resource.type=\"cloud_run_revision\""
  # the persist queue and its shards (<queue>-1, -2, ...), each its own time series
  queue      = "resource.type=\"cloud_tasks_queue\" AND resource.labels.queue_id=starts_with(\"${var.persist_queue}\")"
  operations = "docs/operations.md, \"Alerts and what they mean\""

  # One condition each. `window` is the alignment period; `sum` counts log lines in it,
  # otherwise the value is the aligner's (`rate` is per second). The condition must hold
  # for `duration`.
  threshold_alerts = {
    webhook-refusals = {
      name      = "Webhook refusals"
      filter    = "${local.user_metric["request-refused"]} AND metric.labels.service=\"${local.services.webhook}\" AND metric.labels.status=starts_with(\"4\")"
      aligner   = "ALIGN_RATE"
      window    = "60s"
      threshold = var.webhook_refusals_per_minute / 60
      duration  = "300s"
      doc       = "The webhook answered more than ${var.webhook_refusals_per_minute} deliveries a minute with a 4xx for 5 minutes (403: bad signature, 400/413: malformed, 429: an address over its forgery budget). Someone is probing the endpoint, or Twitch signs with a secret we no longer accept. First: split the dashboard's refusals chart by cause; if Twitch's own deliveries are refused, a secret rotation went wrong (docs/deploy.md)."
    }
    persist-5xx = {
      name      = "Persist 5xx"
      filter    = "${local.run_requests} AND resource.labels.service_name=\"${local.services.persist}\" AND metric.labels.response_code_class=\"5xx\""
      aligner   = "ALIGN_RATE"
      window    = "60s"
      threshold = 0
      duration  = "300s"
      doc       = "Persist has answered Cloud Tasks with 5xx for 5 minutes: PostgreSQL unreachable (503, see \"Database errors\") or a bug (500, see \"Unexpected errors\"). Cloud Tasks retries for a day, nothing is lost yet. First: read persist's `request refused` lines for `cause`."
    }
    queue-backlog = {
      name      = "Queue backlog"
      filter    = "metric.type=\"cloudtasks.googleapis.com/queue/depth\" AND ${local.queue}"
      aligner   = "ALIGN_MAX"
      window    = "60s"
      threshold = var.queue_depth_threshold
      duration  = "300s"
      doc       = "More than ${var.queue_depth_threshold} tasks have waited in the persist queue for 5 minutes: persist cannot keep up or is failing. First: check \"Persist 5xx\" and persist's errors, then its max instances and the queue's dispatch rate."
    }
    queue-delay = {
      name      = "Queue delay"
      filter    = "metric.type=\"cloudtasks.googleapis.com/queue/task_attempt_delays\" AND ${local.queue}"
      aligner   = "ALIGN_PERCENTILE_99"
      window    = "60s"
      threshold = var.queue_delay_seconds * 1000 # the metric is in milliseconds
      duration  = "300s"
      doc       = "Tasks are dispatched more than ${var.queue_delay_seconds} s after they were due (p99, 5 minutes): events reach the dashboards that late. Cloud Tasks exports no oldest-task age; this delay is the closest measure. First: as for \"Queue backlog\"."
    }
    dead-letters = {
      name      = "Dead letters"
      filter    = local.user_metric["dead-letters"]
      aligner   = "ALIGN_SUM"
      window    = "300s"
      threshold = 0
      duration  = "0s"
      doc       = "Persist dead-lettered a delivery it could not decode or normalize (kept in ingest_dead_letters, raw body included, and acknowledged). First: read the row (`reason`), fix the normalizer, replay it."
    }
    database-errors = {
      name      = "Database errors"
      filter    = local.user_metric["database-errors"]
      aligner   = "ALIGN_SUM"
      window    = "300s"
      threshold = 5
      duration  = "300s"
      doc       = "More than 5 PostgreSQL failures in every 5 minutes for 5 minutes: persist answers 503 (Cloud Tasks retries), relays refuse new sockets. First: Aurora and RDS Proxy health in CloudWatch (target health, connections), then the VPN tunnels; see \"PostgreSQL down\"."
    }
    redis-errors = {
      name      = "Redis errors"
      filter    = local.user_metric["redis-errors"]
      aligner   = "ALIGN_SUM"
      window    = "300s"
      threshold = 0
      duration  = "300s"
      doc       = "Redis has been refusing or unreachable for 5 minutes: publishes are skipped (the relays fill the gap from PostgreSQL every few seconds) and rate limits are off. First: Memorystore's health and the REDIS_URL secret; see \"Redis down\"."
    }
    relay-sockets-refused = {
      name      = "Relay sockets refused"
      filter    = "${local.user_metric["relay-sockets"]} AND metric.labels.message=one_of(\"socket refused: rate limited\", \"connection refused: database unavailable\")"
      aligner   = "ALIGN_SUM"
      window    = "300s"
      threshold = 50
      duration  = "300s"
      doc       = "More than 50 new sockets refused in every 5 minutes for 5 minutes, by the connect rate limit or because PostgreSQL is down. First: the chart's `message` label; a rate limit hit by a whole agency behind one address means raising RATE_LIMIT_CONNECT_IP."
    }
    slow-clients = {
      name      = "Slow clients"
      filter    = "${local.user_metric["relay-sockets"]} AND metric.labels.message=\"slow client disconnected\""
      aligner   = "ALIGN_SUM"
      window    = "300s"
      threshold = var.slow_clients_per_5_minutes
      duration  = "0s"
      doc       = "More than ${var.slow_clients_per_5_minutes} sockets in 5 minutes were cut off because their send queue passed RELAY_SEND_QUEUE_LIMIT: dashboards on bad networks, or the relay is overloaded. First: realtime's CPU and instance count before blaming clients."
    }
    unexpected-errors = {
      name      = "Unexpected errors"
      filter    = local.user_metric["unexpected-errors"]
      aligner   = "ALIGN_SUM"
      window    = "300s"
      threshold = 0
      duration  = "0s"
      doc       = "A deployable logged an unexpected error (answered 500, traceback in the log line) or a misconfiguration. First: open the line's stack_trace in Logs Explorer (jsonPayload.message=\"unexpected error\")."
    }
    archive-failed = {
      name      = "Archive failed"
      filter    = local.user_metric["archive-failures"]
      aligner   = "ALIGN_SUM"
      window    = "3600s"
      threshold = 0
      duration  = "0s"
      doc       = "An archive day did not export, or a company purge failed. The next run retries both. First: the line's `error`; trigger the scheduler job to retry at once."
    }
  }

  cloud_sql = "resource.type=\"cloudsql_database\" AND resource.labels.database_id=\"${var.project}:${var.cloud_sql_instance}\""
  cloud_sql_alerts = {
    cloud-sql-cpu = {
      name      = "Cloud SQL CPU"
      filter    = "metric.type=\"cloudsql.googleapis.com/database/cpu/utilization\" AND ${local.cloud_sql}"
      aligner   = "ALIGN_MEAN"
      window    = "60s"
      threshold = 0.8
      duration  = "600s"
      doc       = "Cloud SQL's CPU has been above 80% for 10 minutes: persist and the API slow down, the queue grows. First: Query Insights for the query; otherwise a larger tier (gcp_cloud_sql's tier)."
    }
    cloud-sql-memory = {
      name      = "Cloud SQL memory"
      filter    = "metric.type=\"cloudsql.googleapis.com/database/memory/utilization\" AND ${local.cloud_sql}"
      aligner   = "ALIGN_MEAN"
      window    = "60s"
      threshold = 0.9
      duration  = "600s"
      doc       = "Cloud SQL's memory has been above 90% for 10 minutes. First: connections (each pool's size times instances), then a larger tier."
    }
    cloud-sql-disk = {
      name      = "Cloud SQL disk"
      filter    = "metric.type=\"cloudsql.googleapis.com/database/disk/utilization\" AND ${local.cloud_sql}"
      aligner   = "ALIGN_MAX"
      window    = "300s"
      threshold = 0.85
      duration  = "0s"
      doc       = "Cloud SQL's disk is more than 85% full. First: is the archive running (it prunes rows past hot_retention_days once archived)? Then let storage auto-increase or raise the disk size."
    }
  }
  alerts = { for key, alert in merge(local.threshold_alerts, local.cloud_sql_alerts) : key => alert if var.cloud_sql_instance != "" || !startswith(key, "cloud-sql-") }

  # 5xx share of all requests, for the services that answer people or Twitch
  ratio_alerts = {
    webhook-5xx = {
      name    = "Webhook 5xx"
      service = local.services.webhook
      doc     = "More than 1% of Twitch's deliveries got a 5xx for 5 minutes: Firestore (LedgerUnavailableError) or Cloud Tasks (QueueUnavailableError) refuses, or a bug. Twitch redelivers for a while, then revokes the subscription. First: webhook's `request refused` lines for `cause`; see \"Firestore down\" / \"Cloud Tasks unavailable\"."
    }
    realtime-5xx = {
      name    = "Realtime 5xx"
      service = local.services.realtime
      doc     = "More than 1% of the dashboard's and the API's requests got a 5xx for 5 minutes. First: \"Database errors\", \"Redis errors\" and \"Unexpected errors\" say which dependency or bug."
    }
  }

  channels = [for c in google_monitoring_notification_channel.email : c.id]
}

resource "google_monitoring_alert_policy" "threshold" {
  for_each              = local.alerts
  project               = var.project
  display_name          = "${var.prefix}: ${each.value.name}"
  combiner              = "OR"
  notification_channels = local.channels
  conditions {
    display_name = each.value.name
    condition_threshold {
      filter          = each.value.filter
      comparison      = "COMPARISON_GT"
      threshold_value = each.value.threshold
      duration        = each.value.duration
      aggregations {
        alignment_period     = each.value.window
        per_series_aligner   = each.value.aligner
        cross_series_reducer = each.value.aligner == "ALIGN_PERCENTILE_99" ? "REDUCE_MAX" : "REDUCE_SUM"
      }
      trigger {
        count = 1
      }
    }
  }
  alert_strategy {
    auto_close = "1800s"
  }
  documentation {
    content   = "${each.value.doc}\n\nRunbook: ${local.operations}, row \"${each.value.name}\"."
    mime_type = "text/markdown"
  }
}

resource "google_monitoring_alert_policy" "ratio" {
  for_each              = local.ratio_alerts
  project               = var.project
  display_name          = "${var.prefix}: ${each.value.name}"
  combiner              = "OR"
  notification_channels = local.channels
  conditions {
    display_name = each.value.name
    condition_threshold {
      filter             = "${local.run_requests} AND resource.labels.service_name=\"${each.value.service}\" AND metric.labels.response_code_class=\"5xx\""
      denominator_filter = "${local.run_requests} AND resource.labels.service_name=\"${each.value.service}\""
      comparison         = "COMPARISON_GT"
      threshold_value    = 0.01
      duration           = "300s"
      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_RATE"
        cross_series_reducer = "REDUCE_SUM"
      }
      denominator_aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_RATE"
        cross_series_reducer = "REDUCE_SUM"
      }
      trigger {
        count = 1
      }
    }
  }
  alert_strategy {
    auto_close = "1800s"
  }
  documentation {
    content   = "${each.value.doc}\n\nRunbook: ${local.operations}, row \"${each.value.name}\"."
    mime_type = "text/markdown"
  }
}

resource "google_monitoring_alert_policy" "uptime" {
  project               = var.project
  display_name          = "${var.prefix}: Realtime down"
  combiner              = "OR"
  notification_channels = local.channels
  conditions {
    display_name = "Realtime down"
    condition_threshold {
      filter          = "metric.type=\"monitoring.googleapis.com/uptime_check/check_passed\" AND resource.type=\"uptime_url\" AND metric.labels.check_id=\"${google_monitoring_uptime_check_config.healthz.uptime_check_id}\""
      comparison      = "COMPARISON_GT"
      threshold_value = 1
      duration        = "300s"
      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_NEXT_OLDER"
        cross_series_reducer = "REDUCE_COUNT_FALSE"
        group_by_fields      = ["resource.labels.host"]
      }
      trigger {
        count = 1
      }
    }
  }
  alert_strategy {
    auto_close = "1800s"
  }
  documentation {
    content   = "https://${var.realtime_host}/healthz failed from more than one checker region for 5 minutes: nobody can open the dashboard. First: the realtime service's revisions and instance logs (a crash at start names the missing setting), then the domain and its certificate.\n\nRunbook: ${local.operations}, row \"Realtime down\"."
    mime_type = "text/markdown"
  }
}

locals {
  # title, filter, aligner, reducer and the labels each line is split by
  charts = [
    { title = "Webhook requests/s by response class", filter = "${local.run_requests} AND resource.labels.service_name=\"${local.services.webhook}\"", aligner = "ALIGN_RATE", reducer = "REDUCE_SUM", by = ["metric.labels.response_code_class"] },
    { title = "Webhook latency p99 (ms)", filter = "metric.type=\"run.googleapis.com/request_latencies\" AND resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"${local.services.webhook}\"", aligner = "ALIGN_PERCENTILE_99", reducer = "REDUCE_MAX", by = [] },
    { title = "Requests refused/s by service and cause", filter = local.user_metric["request-refused"], aligner = "ALIGN_RATE", reducer = "REDUCE_SUM", by = ["metric.labels.service", "metric.labels.cause"] },
    { title = "Persist queue depth", filter = "metric.type=\"cloudtasks.googleapis.com/queue/depth\" AND ${local.queue}", aligner = "ALIGN_MAX", reducer = "REDUCE_SUM", by = [] },
    { title = "Persist queue dispatch delay p99 (ms)", filter = "metric.type=\"cloudtasks.googleapis.com/queue/task_attempt_delays\" AND ${local.queue}", aligner = "ALIGN_PERCENTILE_99", reducer = "REDUCE_MAX", by = [] },
    { title = "Persist task attempts/s by response code", filter = "metric.type=\"cloudtasks.googleapis.com/queue/task_attempt_count\" AND ${local.queue}", aligner = "ALIGN_RATE", reducer = "REDUCE_SUM", by = ["metric.labels.response_code"] },
    { title = "Dead letters", filter = local.user_metric["dead-letters"], aligner = "ALIGN_SUM", reducer = "REDUCE_SUM", by = [] },
    { title = "Database errors by message", filter = local.user_metric["database-errors"], aligner = "ALIGN_SUM", reducer = "REDUCE_SUM", by = ["metric.labels.message"] },
    { title = "Redis errors by message", filter = local.user_metric["redis-errors"], aligner = "ALIGN_SUM", reducer = "REDUCE_SUM", by = ["metric.labels.message"] },
    { title = "Relay socket events by message", filter = local.user_metric["relay-sockets"], aligner = "ALIGN_SUM", reducer = "REDUCE_SUM", by = ["metric.labels.message"] },
    { title = "Realtime concurrent requests (open sockets) per instance, p99", filter = "metric.type=\"run.googleapis.com/container/max_request_concurrencies\" AND resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"${local.services.realtime}\"", aligner = "ALIGN_PERCENTILE_99", reducer = "REDUCE_MAX", by = [] },
    { title = "Realtime instances", filter = "metric.type=\"run.googleapis.com/container/instance_count\" AND resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"${local.services.realtime}\"", aligner = "ALIGN_MAX", reducer = "REDUCE_SUM", by = ["metric.labels.state"] },
    { title = "Realtime requests/s by response class", filter = "${local.run_requests} AND resource.labels.service_name=\"${local.services.realtime}\"", aligner = "ALIGN_RATE", reducer = "REDUCE_SUM", by = ["metric.labels.response_code_class"] },
    { title = "Uptime /healthz: failing checkers", filter = "metric.type=\"monitoring.googleapis.com/uptime_check/check_passed\" AND resource.type=\"uptime_url\" AND metric.labels.check_id=\"${google_monitoring_uptime_check_config.healthz.uptime_check_id}\"", aligner = "ALIGN_NEXT_OLDER", reducer = "REDUCE_COUNT_FALSE", by = [] },
    { title = "Unexpected errors by service", filter = local.user_metric["unexpected-errors"], aligner = "ALIGN_SUM", reducer = "REDUCE_SUM", by = ["metric.labels.service"] },
    { title = "Archive failures", filter = local.user_metric["archive-failures"], aligner = "ALIGN_SUM", reducer = "REDUCE_SUM", by = ["metric.labels.message"] },
  ]
}

resource "google_monitoring_dashboard" "controlroom" {
  project = var.project
  dashboard_json = jsonencode({
    displayName = "${var.prefix} Creator Control Room"
    mosaicLayout = {
      columns = 48
      tiles = [for i, chart in local.charts : {
        xPos   = (i % 2) * 24
        yPos   = floor(i / 2) * 16
        width  = 24
        height = 16
        widget = {
          title = chart.title
          xyChart = {
            dataSets = [{
              plotType = "LINE"
              timeSeriesQuery = {
                timeSeriesFilter = {
                  filter = chart.filter
                  aggregation = {
                    alignmentPeriod    = "60s"
                    perSeriesAligner   = chart.aligner
                    crossSeriesReducer = chart.reducer
                    groupByFields      = chart.by
                  }
                }
              }
            }]
          }
        }
      }]
    }
  })
}

output "alert_policies" {
  description = "Alert display name => policy id (the names are the rows of docs/operations.md's alert table)."
  value = merge(
    { for key, a in local.alerts : a.name => google_monitoring_alert_policy.threshold[key].name },
    { for key, a in local.ratio_alerts : a.name => google_monitoring_alert_policy.ratio[key].name },
    { "Realtime down" = google_monitoring_alert_policy.uptime.name },
  )
}

output "log_metrics" {
  description = "Log-based metric types, for charts and ad-hoc alerts."
  value       = { for key, m in google_logging_metric.log : key => "logging.googleapis.com/user/${m.name}" }
}

output "dashboard_id" {
  description = "The monitoring dashboard's id."
  value       = google_monitoring_dashboard.controlroom.id
}
