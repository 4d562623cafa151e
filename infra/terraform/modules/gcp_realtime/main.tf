# The realtime service on Cloud Run: relay, REST API and dashboard, one origin.

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

variable "image" {
  description = "Container image of realtime/ (pushed by CI), pinned by digest."
  type        = string
}

variable "service_account" {
  description = "The realtime service account email."
  type        = string
}

variable "connector" {
  description = "Serverless VPC Access connector id (Redis and the database)."
  type        = string
}

variable "min_instances" {
  description = "Instances kept warm (sockets survive deploys better with more than one)."
  type        = number
  default     = 1
}

variable "max_instances" {
  description = "Upper bound of instances."
  type        = number
  default     = 10
  validation {
    condition     = var.max_instances >= 1 && var.max_instances <= 100
    error_message = "max_instances must be between 1 and 100."
  }
}

variable "environment" {
  description = "Plain environment variables."
  type        = map(string)
}

variable "secrets" {
  description = "Environment variable => the Secret Manager secret and its pinned version (gcp_secrets' versions)."
  type = map(object({
    secret  = string
    version = string
  }))
}

variable "cloud_sql_instance" {
  description = "Cloud SQL instance connection name mounted at /cloudsql (asyncio connections use its socket); null with Aurora."
  type        = string
  default     = null
}

resource "google_cloud_run_v2_service" "realtime" {
  project  = var.project
  location = var.region
  name     = "${var.prefix}-realtime"
  ingress  = "INGRESS_TRAFFIC_ALL"

  template {
    service_account                  = var.service_account
    session_affinity                 = true
    timeout                          = "3600s" # websockets live as long as a request may
    max_instance_request_concurrency = 1000
    scaling {
      min_instance_count = var.min_instances
      max_instance_count = var.max_instances
    }
    vpc_access {
      connector = var.connector
      egress    = "PRIVATE_RANGES_ONLY"
    }
    dynamic "volumes" {
      for_each = var.cloud_sql_instance == null ? [] : [var.cloud_sql_instance]
      content {
        name = "cloudsql"
        cloud_sql_instance {
          instances = [volumes.value]
        }
      }
    }
    containers {
      image = var.image
      ports {
        container_port = 8080
      }
      resources {
        limits = { cpu = "2", memory = "1Gi" }
      }
      dynamic "volume_mounts" {
        for_each = var.cloud_sql_instance == null ? [] : ["cloudsql"]
        content {
          name       = volume_mounts.value
          mount_path = "/cloudsql"
        }
      }
      startup_probe {
        http_get {
          path = "/healthz"
        }
      }
      liveness_probe {
        http_get {
          path = "/healthz"
        }
      }
      dynamic "env" {
        for_each = var.environment
        content {
          name  = env.key
          value = env.value
        }
      }
      dynamic "env" {
        for_each = var.secrets
        content {
          name = env.key
          value_source {
            secret_key_ref {
              secret  = env.value.secret
              version = env.value.version
            }
          }
        }
      }
    }
  }
}

# The dashboard and its API are public; every call is authenticated by its JWT.
resource "google_cloud_run_v2_service_iam_member" "public" {
  project  = var.project
  location = var.region
  name     = google_cloud_run_v2_service.realtime.name
  role     = "roles/run.invoker"
  member   = "allUsers"
}

output "url" {
  description = "The dashboard, REST API and Socket.IO origin."
  value       = google_cloud_run_v2_service.realtime.uri
}
