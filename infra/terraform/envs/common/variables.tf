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
  description = "Container image of realtime/, pinned by digest (CI pushes it); may be left out only for the bootstrap apply (-target=module.bootstrap)."
  type        = string
  default     = null
  validation {
    condition     = var.realtime_image == null || can(regex("@sha256:[0-9a-f]{64}$", var.realtime_image))
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

variable "database_engine" {
  description = "Where PostgreSQL runs: \"aurora\" (AWS, behind RDS Proxy with IAM authentication, reached over the HA VPN) or \"cloud_sql\" (Cloud SQL for PostgreSQL; no VPN)."
  type        = string
  default     = "aurora"
  validation {
    condition     = contains(["aurora", "cloud_sql"], var.database_engine)
    error_message = "database_engine must be aurora or cloud_sql."
  }
}

variable "aws_vpc_id" {
  description = "The AWS VPC of Aurora and the RDS Proxy (aurora only)."
  type        = string
  default     = ""
}

variable "aws_vpc_cidr" {
  description = "The AWS VPC's range (aurora only): private (RFC 1918), so the serverless egress PRIVATE_RANGES_ONLY sends it through the connector and the VPN."
  type        = string
  default     = ""
  validation {
    condition     = var.aws_vpc_cidr == "" || (can(cidrnetmask(var.aws_vpc_cidr)) && can(regex("^(10\\.|172\\.(1[6-9]|2[0-9]|3[01])\\.|192\\.168\\.)", var.aws_vpc_cidr)))
    error_message = "aws_vpc_cidr must be a private (RFC 1918) range."
  }
}

variable "aws_subnet_ids" {
  description = "Private subnets (two zones at least) for Aurora and the RDS Proxy (aurora only)."
  type        = list(string)
  default     = []
}

variable "aws_route_table_ids" {
  description = "Route tables of those subnets: the VPN propagates the Google ranges into them (aurora only)."
  type        = list(string)
  default     = []
}

variable "google_asn" {
  description = "Private BGP ASN of the Cloud Router (differs from aws_asn)."
  type        = number
  default     = 65010
}

variable "aws_asn" {
  description = "Private BGP ASN of AWS's virtual private gateway."
  type        = number
  default     = 64512
}

variable "cloud_sql_tier" {
  description = "Cloud SQL machine type (cloud_sql only)."
  type        = string
  default     = "db-custom-2-7680"
}

variable "aws_web_identity_audience" {
  description = "Audience of the Google ID tokens the workloads exchange for AWS credentials (checked by every role's trust policy)."
  type        = string
  default     = "controlroom-aws"
}

variable "github_repository" {
  description = "owner/name of the GitHub repository whose workflows deploy (workload identity on both clouds)."
  type        = string
}

variable "aws_create_github_oidc_provider" {
  description = "Create GitHub's OIDC provider in the AWS account (one per account: false for the second environment in the same account)."
  type        = bool
  default     = true
}

variable "given_secret_versions" {
  description = "Version numbers the services read of the secrets only the operator knows, added with `gcloud secrets versions add` (the first is 1; raise after adding a new one to rotate)."
  type        = map(string)
  default = {
    twitch-client-secret = "1"
    oidc-client-secret   = "1"
    smtp-password        = "1"
  }
  validation {
    condition     = alltrue([for name in ["twitch-client-secret", "oidc-client-secret"] : can(regex("^[1-9][0-9]*$", lookup(var.given_secret_versions, name, "")))])
    error_message = "given_secret_versions needs a version number for twitch-client-secret and oidc-client-secret."
  }
}

variable "eventsub_secret_generation" {
  description = "Raise by one to rotate the EventSub secret: the new value becomes current, the old one stays accepted as previous."
  type        = number
  default     = 1
  validation {
    condition     = var.eventsub_secret_generation >= 1 && floor(var.eventsub_secret_generation) == var.eventsub_secret_generation
    error_message = "eventsub_secret_generation must be a whole number, 1 or more."
  }
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

variable "alert_emails" {
  description = "Addresses alerts and alarms are mailed to (each confirms by mail on AWS); empty: alerts show in the consoles only."
  type        = list(string)
  default     = []
}

variable "persist_queue_shards" {
  description = "Persist queues the webhook spreads deliveries over; one dispatches at most 500/s (docs/capacity.md)."
  type        = number
  default     = 1
}
