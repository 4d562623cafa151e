# The Cloud Functions (2nd gen), from the folders `make build` writes to build/<name>.
# webhook is public (Twitch authenticates it by HMAC); the others accept only their callers.

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

variable "build_dir" {
  description = "Folder holding build/<function> as written by `make build`."
  type        = string
}

variable "service_accounts" {
  description = "Service account email per deployable (from gcp_service_accounts)."
  type        = map(string)
}

variable "connector" {
  description = "Serverless VPC Access connector id, for the functions that reach the database or Redis."
  type        = string
}

variable "environment" {
  description = "Plain environment variables per function."
  type        = map(map(string))
}

variable "secrets" {
  description = "Per function: environment variable => the Secret Manager secret and its pinned version (gcp_secrets' versions)."
  type = map(map(object({
    secret  = string
    version = string
  })))
}

variable "max_instances" {
  description = "Upper bound of instances per function."
  type        = map(number)
  default     = { webhook = 20, persist = 20, subscriptions = 2, archive = 1, pulse = 1, notify = 10 }
}

locals {
  functions = {
    webhook = { vpc = false, memory = "256M", timeout = 10, invokers = [] }
    # persist groups one company's concurrent deliveries into one commit (docs/capacity.md):
    # it takes 16 requests at once on a whole vCPU (more than one needs at least one vCPU)
    persist       = { vpc = true, memory = "1Gi", timeout = 60, invokers = ["tasks"], cpu = "1", concurrency = 16 }
    subscriptions = { vpc = true, memory = "256M", timeout = 300, invokers = ["tasks", "scheduler"] }
    archive       = { vpc = true, memory = "1Gi", timeout = 1800, invokers = ["scheduler"] } # Scheduler waits 30 min at most
    # every minute; one instance, so two runs never sample the same minute twice
    pulse = { vpc = true, memory = "256M", timeout = 60, invokers = ["scheduler"] }
    # posts to Discord, Slack and webhooks on the internet (the connector carries only
    # private ranges); only the notify queue's tasks, signed as the notifier, may call it
    notify = { vpc = true, memory = "256M", timeout = 60, invokers = ["notifier"] }
  }
}

resource "google_storage_bucket" "sources" {
  # checkov:skip=CKV_GCP_62: build artifacts only; Cloud Audit Logs record who changed them
  project                     = var.project
  name                        = "${var.project}-${var.prefix}-function-sources"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  versioning {
    enabled = true
  }
}

# The functions' builds run as their own account: the Compute Engine default account that
# Cloud Build would use otherwise holds no roles in projects created with the default
# organization policies, and the build would fail on the first apply.
resource "google_service_account" "build" {
  project      = var.project
  account_id   = "${var.prefix}-build"
  display_name = "Creator Control Room function builds"
}

resource "google_project_iam_member" "build" {
  for_each = toset(["roles/logging.logWriter", "roles/artifactregistry.writer", "roles/storage.objectViewer"])
  project  = var.project
  role     = each.value
  member   = "serviceAccount:${google_service_account.build.email}"
}

data "archive_file" "source" {
  for_each    = local.functions
  type        = "zip"
  source_dir  = "${var.build_dir}/${each.key}"
  output_path = "${var.build_dir}/${each.key}.zip"
}

resource "google_storage_bucket_object" "source" {
  for_each = local.functions
  bucket   = google_storage_bucket.sources.name
  name     = "${each.key}-${data.archive_file.source[each.key].output_md5}.zip"
  source   = data.archive_file.source[each.key].output_path
}

resource "google_cloudfunctions2_function" "function" {
  # checkov:skip=CKV_GCP_124: the webhook must accept traffic from Twitch (the internet); the other functions are internal only
  for_each = local.functions
  project  = var.project
  location = var.region
  name     = "${var.prefix}-${each.key}"

  build_config {
    runtime         = "python311"
    entry_point     = each.key
    service_account = google_service_account.build.id
    source {
      storage_source {
        bucket = google_storage_bucket.sources.name
        object = google_storage_bucket_object.source[each.key].name
      }
    }
  }

  service_config {
    service_account_email         = var.service_accounts[each.key]
    available_memory              = each.value.memory
    timeout_seconds               = each.value.timeout
    max_instance_count            = var.max_instances[each.key]
    min_instance_count            = each.key == "webhook" ? 1 : 0
    ingress_settings              = each.key == "webhook" ? "ALLOW_ALL" : "ALLOW_INTERNAL_AND_GCLB"
    vpc_connector                 = each.value.vpc ? var.connector : null
    vpc_connector_egress_settings = each.value.vpc ? "PRIVATE_RANGES_ONLY" : null
    available_cpu                 = lookup(each.value, "cpu", null)
    # functions-framework serves with gunicorn threads: one per request Cloud Run may send
    environment_variables            = merge(lookup(var.environment, each.key, {}), { THREADS = tostring(lookup(each.value, "concurrency", 1)) })
    all_traffic_on_latest_revision   = true
    max_instance_request_concurrency = lookup(each.value, "concurrency", 1)

    dynamic "secret_environment_variables" {
      for_each = lookup(var.secrets, each.key, {})
      content {
        key        = secret_environment_variables.key
        project_id = var.project
        secret     = secret_environment_variables.value.secret
        version    = secret_environment_variables.value.version
      }
    }
  }

  depends_on = [google_project_iam_member.build]
}

# Twitch must reach the webhook without Google credentials.
resource "google_cloud_run_service_iam_member" "public_webhook" {
  # checkov:skip=CKV_GCP_102: Twitch cannot present Google credentials; every delivery is authenticated by its HMAC signature
  project  = var.project
  location = var.region
  service  = google_cloudfunctions2_function.function["webhook"].service_config[0].service
  role     = "roles/run.invoker"
  member   = "allUsers"
}

# Private functions: only their callers' service accounts (OIDC tokens) may invoke them.
resource "google_cloud_run_service_iam_member" "invoker" {
  for_each = merge([for name, f in local.functions : {
    for caller in f.invokers : "${name}/${caller}" => { function = name, caller = caller }
  }]...)
  project  = var.project
  location = var.region
  service  = google_cloudfunctions2_function.function[each.value.function].service_config[0].service
  role     = "roles/run.invoker"
  member   = "serviceAccount:${var.service_accounts[each.value.caller]}"
}

output "urls" {
  description = "HTTPS URL per function (the webhook's is the EventSub callback)."
  value       = { for name, f in google_cloudfunctions2_function.function : name => f.service_config[0].uri }
}
