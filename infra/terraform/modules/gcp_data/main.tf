# Memorystore Redis behind a Serverless VPC Access connector (TLS with server authentication:
# clients get the server CA as REDIS_CA_CERT and connect with rediss://), and the Firestore
# database of the webhook's delivery ledger with a TTL policy on its expiry field.

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

variable "network" {
  description = "VPC network self link that Redis and the connector attach to."
  type        = string
}

variable "connector_cidr" {
  description = "A free /28 range for the Serverless VPC Access connector."
  type        = string
  validation {
    condition     = can(cidrnetmask(var.connector_cidr)) && endswith(var.connector_cidr, "/28")
    error_message = "connector_cidr must be a /28 range."
  }
}

variable "redis_memory_gb" {
  description = "Memorystore size in GiB."
  type        = number
  default     = 1
  validation {
    condition     = var.redis_memory_gb >= 1 && var.redis_memory_gb <= 300
    error_message = "redis_memory_gb must be between 1 and 300."
  }
}

resource "google_redis_instance" "pubsub" {
  project                 = var.project
  region                  = var.region
  name                    = "${var.prefix}-redis"
  tier                    = "STANDARD_HA"
  memory_size_gb          = var.redis_memory_gb
  authorized_network      = var.network
  transit_encryption_mode = "SERVER_AUTHENTICATION"
  auth_enabled            = true
  redis_version           = "REDIS_7_2"
}

resource "google_vpc_access_connector" "serverless" {
  project       = var.project
  region        = var.region
  name          = "${var.prefix}-vpc"
  network       = var.network
  ip_cidr_range = var.connector_cidr
  min_instances = 2
  max_instances = 4
}

resource "google_firestore_database" "ledger" {
  project     = var.project
  name        = "${var.prefix}-ledger"
  location_id = var.region
  type        = "FIRESTORE_NATIVE"
}

resource "google_firestore_field" "ledger_expiry" {
  project    = var.project
  database   = google_firestore_database.ledger.name
  collection = "eventsub_deliveries"
  field      = "expires_at"
  ttl_config {}
}

output "redis_host" {
  description = "Memorystore host (private)."
  value       = google_redis_instance.pubsub.host
}

output "redis_port" {
  description = "Memorystore port."
  value       = google_redis_instance.pubsub.port
}

output "redis_auth" {
  description = "Memorystore AUTH string (goes into the redis-url secret only)."
  value       = google_redis_instance.pubsub.auth_string
  sensitive   = true
}

output "redis_ca_certs" {
  description = "PEM of Memorystore's server CA(s) (REDIS_CA_CERT: clients verify the server with it; several during a rotation)."
  value       = join("\n", [for c in google_redis_instance.pubsub.server_ca_certs : trimspace(c.cert)])
}

output "connector" {
  description = "Serverless VPC Access connector id."
  value       = google_vpc_access_connector.serverless.id
}

output "firestore_database" {
  description = "Firestore database of the delivery ledger."
  value       = google_firestore_database.ledger.name
}
