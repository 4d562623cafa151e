variable "environment" {
  description = "The environment's name (set by envs/<env>/environment.auto.tfvars)."
  type        = string
  validation {
    condition     = contains(["dev", "prod"], var.environment)
    error_message = "environment must be dev or prod."
  }
}

variable "project" {
  description = "Google Cloud project id."
  type        = string
}

variable "region" {
  description = "Google Cloud region for every Google resource."
  type        = string
  default     = "europe-west1"
}

variable "aws_region" {
  description = "AWS region for storage, the database and analytics."
  type        = string
  default     = "eu-west-1"
}

variable "network" {
  description = "Self link of the VPC network that Memorystore and the connector attach to."
  type        = string
}

variable "connector_cidr" {
  description = "A free /28 for the Serverless VPC Access connector."
  type        = string
}

variable "redis_memory_gb" {
  description = "Memorystore size in GiB."
  type        = number
  default     = 1
}

variable "build_dir" {
  description = "Folder that `make build` filled (build/<function>)."
  type        = string
  default     = "../../../../build"
}

variable "realtime_image" {
  description = "Container image of realtime/, pinned by digest (CI pushes it)."
  type        = string
  validation {
    condition     = can(regex("@sha256:[0-9a-f]{64}$", var.realtime_image))
    error_message = "realtime_image must be pinned by digest (…@sha256:<64 hex>)."
  }
}

variable "realtime_min_instances" {
  description = "Realtime instances kept warm."
  type        = number
  default     = 1
}

variable "realtime_max_instances" {
  description = "Upper bound of realtime instances."
  type        = number
  default     = 10
}

variable "dashboard_origins" {
  description = "Origins of the dashboard (for the branding bucket's CORS)."
  type        = list(string)
}

variable "aws_subnet_ids" {
  description = "Private subnets for Aurora and the RDS Proxy."
  type        = list(string)
}

variable "aws_security_group_ids" {
  description = "Security groups for Aurora and the RDS Proxy."
  type        = list(string)
}

variable "database_max_capacity" {
  description = "Aurora Serverless v2 maximum capacity units."
  type        = number
  default     = 8
}

variable "hot_retention_days" {
  description = "Days of events kept in PostgreSQL after they are archived and verified."
  type        = number
  default     = 90
  validation {
    condition     = var.hot_retention_days >= 1
    error_message = "hot_retention_days must be at least 1."
  }
}

variable "public_url" {
  description = "The service's external origin (sign-in redirects come back here; the iss of our tokens)."
  type        = string
  validation {
    condition     = can(regex("^https://[A-Za-z0-9.-]+(:[0-9]+)?$", var.public_url))
    error_message = "public_url must be an https origin (no path)."
  }
}

variable "jwt_audience" {
  description = "The audience our access tokens are issued for."
  type        = string
  default     = "controlroom"
}

variable "oidc_issuer" {
  description = "The OpenID Connect issuer people sign in at (Google, Twitch, Auth0, Entra ID...)."
  type        = string
  validation {
    condition     = startswith(var.oidc_issuer, "https://")
    error_message = "oidc_issuer must be https."
  }
}

variable "oidc_client_id" {
  description = "Our client at the OpenID Connect issuer (its secret is the oidc-client-secret secret)."
  type        = string
}

variable "oidc_provider_name" {
  description = "The sign-in button's label (\"Sign in with ...\")."
  type        = string
  default     = ""
}

variable "twitch_client_id" {
  description = "Twitch application client id (its secret is in Secret Manager)."
  type        = string
}

variable "eventsub_callback_url" {
  description = "Public URL Twitch calls (the webhook function's URL, or a domain in front of it)."
  type        = string
}

variable "smtp_host" {
  description = "SMTP relay for invitation mail (STARTTLS on); empty: invitations are shown, not mailed."
  type        = string
  default     = ""
}

variable "smtp_port" {
  description = "SMTP relay port (587: submission with STARTTLS)."
  type        = number
  default     = 587
}

variable "smtp_username" {
  description = "SMTP login (its password is the smtp-password secret); empty: no login."
  type        = string
  default     = ""
}

variable "smtp_from" {
  description = "Sender of invitation mail, e.g. \"Creator Control Room <no-reply@agency.example>\"."
  type        = string
  default     = ""
}
