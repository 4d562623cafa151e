# Every environment, described once: Google Cloud for the services, AWS for storage, the
# database (or Cloud SQL: database_engine) and analytics. envs/<env>/ links these files and
# adds only its backend.tf, environment.auto.tfvars and the example <env>.tfvars.
#
# Order of a first deployment (docs/deploy.md, "First deployment"): apply
# -target=module.bootstrap (APIs, Artifact Registry, the deploy identities), push the image,
# then one full apply. Within the full apply, every secret has its version and every reader
# its grant before a service that reads it is deployed (gcp_secrets' `versions`).

terraform {
  required_version = ">= 1.6"
  required_providers {
    google  = { source = "hashicorp/google", version = "~> 6.10" }
    aws     = { source = "hashicorp/aws", version = "~> 5.80" }
    archive = { source = "hashicorp/archive", version = "~> 2.6" }
    random  = { source = "hashicorp/random", version = "~> 3.6" }
    tls     = { source = "hashicorp/tls", version = "~> 4.0" }
  }
}

provider "google" {
  project = var.project
  region  = var.region
}

provider "aws" {
  region = var.aws_region
}

locals {
  prefix    = "cr-${var.environment}"
  aurora    = var.database_engine == "aurora"
  cloud_sql = var.database_engine == "cloud_sql"
}

# Aurora needs the AWS network described (Cloud SQL needs none of it); the full apply needs
# the image, the bootstrap apply does not.
resource "terraform_data" "inputs" {
  lifecycle {
    precondition {
      condition     = var.realtime_image != null
      error_message = "realtime_image is needed (…@sha256:<digest>, pushed to the image_repository); only -target=module.bootstrap may go without."
    }
    precondition {
      condition     = !local.aurora || (var.aws_vpc_id != "" && length(var.aws_subnet_ids) >= 2 && length(var.aws_route_table_ids) > 0 && var.aws_vpc_cidr != "")
      error_message = "database_engine = \"aurora\" needs aws_vpc_id, aws_vpc_cidr, aws_subnet_ids (two zones) and aws_route_table_ids."
    }
  }
}

module "bootstrap" {
  source            = "../../modules/gcp_bootstrap"
  project           = var.project
  region            = var.region
  prefix            = local.prefix
  github_repository = var.github_repository
  cloud_sql         = local.cloud_sql
}

module "aws_ci" {
  source               = "../../modules/aws_ci"
  prefix               = local.prefix
  github_repository    = var.github_repository
  github_environment   = var.environment
  create_oidc_provider = var.aws_create_github_oidc_provider
}

module "service_accounts" {
  source     = "../../modules/gcp_service_accounts"
  project    = var.project
  prefix     = local.prefix
  depends_on = [module.bootstrap]
}

module "data" {
  source          = "../../modules/gcp_data"
  project         = var.project
  region          = var.region
  prefix          = local.prefix
  network         = var.network
  connector_cidr  = var.connector_cidr
  redis_memory_gb = var.redis_memory_gb
  depends_on      = [module.bootstrap]
}

# ---- the network to AWS (Aurora only): HA VPN with BGP, four tunnels

resource "random_password" "vpn_psk" {
  count   = local.aurora ? 4 : 0
  length  = 48
  special = false # AWS accepts letters, digits, '.' and '_' only
}

module "aws_vpn" {
  source               = "../../modules/aws_vpn"
  count                = local.aurora ? 1 : 0
  prefix               = local.prefix
  vpc_id               = var.aws_vpc_id
  route_table_ids      = var.aws_route_table_ids
  amazon_side_asn      = var.aws_asn
  google_asn           = var.google_asn
  google_interface_ips = module.gcp_vpn[0].interface_ips
  # a key must not start with 0: each begins with a letter
  preshared_keys = [for p in random_password.vpn_psk : "k${p.result}"]
}

module "gcp_vpn" {
  source            = "../../modules/gcp_vpn"
  count             = local.aurora ? 1 : 0
  project           = var.project
  region            = var.region
  prefix            = local.prefix
  network           = var.network
  google_asn        = var.google_asn
  advertised_ranges = [var.connector_cidr]
  aws_tunnels       = module.aws_vpn[0].tunnels
  aws_asn           = var.aws_asn
  preshared_keys    = [for p in random_password.vpn_psk : "k${p.result}"]
  depends_on        = [module.bootstrap]
}

# ---- the database: Aurora behind RDS Proxy (IAM authentication) or Cloud SQL

resource "random_password" "database_app" {
  length  = 40
  special = false
}

resource "random_password" "database_admin" {
  count   = local.cloud_sql ? 1 : 0
  length  = 40
  special = false
}

module "database" {
  source           = "../../modules/aws_database"
  count            = local.aurora ? 1 : 0
  prefix           = local.prefix
  vpc_id           = var.aws_vpc_id
  subnet_ids       = var.aws_subnet_ids
  client_cidrs     = [var.connector_cidr]
  max_capacity     = var.database_max_capacity
  runtime_password = random_password.database_app.result
  depends_on       = [terraform_data.inputs]
}

module "cloud_sql" {
  source         = "../../modules/gcp_cloud_sql"
  count          = local.cloud_sql ? 1 : 0
  project        = var.project
  region         = var.region
  prefix         = local.prefix
  network        = var.network
  tier           = var.cloud_sql_tier
  admin_password = random_password.database_admin[0].result
  depends_on     = [module.bootstrap]
}

# ---- secrets: every one created with its first version

# Two slots, so that a rotation keeps the previous value: raising eventsub_secret_generation
# by one regenerates the slot that was "previous" and makes it current.
resource "random_password" "eventsub" {
  for_each = toset(["a", "b"])
  length   = 64
  special  = false
  keepers = {
    generation = each.key == "a" ? floor(var.eventsub_secret_generation / 2) : floor((var.eventsub_secret_generation + 1) / 2)
  }
}

resource "random_password" "session" {
  length  = 64
  special = false
}

# The notification keyring's first key-encryption key (NOTIFICATION_KEYS: "<id>:<base64 of 32
# bytes>", current first); it wraps each channel's data key (controlroom/adapters/secretbox.py).
resource "random_bytes" "notification_key" {
  length = 32
}

resource "tls_private_key" "token_signing" {
  algorithm = "RSA"
  rsa_bits  = 2048
}

locals {
  sa             = module.service_accounts.emails
  eventsub_now   = var.eventsub_secret_generation % 2 == 0 ? "a" : "b"
  eventsub_then  = local.eventsub_now == "a" ? "b" : "a"
  database_users = [local.sa["persist"], local.sa["realtime"], local.sa["subscriptions"], local.sa["archive"], local.sa["pulse"], local.sa["notify"]]
  secret_readers = merge(
    {
      eventsub-secret          = [local.sa["webhook"], local.sa["subscriptions"]]
      eventsub-secret-previous = [local.sa["webhook"]]
      redis-url                = [local.sa["persist"], local.sa["realtime"], local.sa["pulse"]]
      twitch-client-secret     = [local.sa["subscriptions"], local.sa["realtime"], local.sa["pulse"]]
      notification-keys        = [local.sa["persist"], local.sa["pulse"], local.sa["notify"], local.sa["realtime"]]
      token-signing-keys       = [local.sa["realtime"]]
      oidc-client-secret       = [local.sa["realtime"]]
      session-secret           = [local.sa["realtime"]]
    },
    var.smtp_username != "" ? { smtp-password = [local.sa["realtime"]] } : {},
    # Cloud SQL signs in with a password; Aurora's proxy with IAM tokens (no password at all)
    local.cloud_sql ? { database-password = local.database_users, database-admin-password = [] } : {},
  )
  secret_values = merge(
    {
      eventsub-secret          = random_password.eventsub[local.eventsub_now].result
      eventsub-secret-previous = random_password.eventsub[local.eventsub_then].result
      redis-url                = "rediss://:${module.data.redis_auth}@${module.data.redis_host}:${module.data.redis_port}/0"
      token-signing-keys       = tls_private_key.token_signing.private_key_pem_pkcs8
      session-secret           = random_password.session.result
      notification-keys        = "k1:${random_bytes.notification_key.base64}"
    },
    local.cloud_sql ? {
      database-password       = random_password.database_app.result
      database-admin-password = random_password.database_admin[0].result
    } : {},
  )
}

module "secrets" {
  source  = "../../modules/gcp_secrets"
  project = var.project
  prefix  = local.prefix
  readers = local.secret_readers
  values  = local.secret_values
  # added by the operator: twitch-client-secret, oidc-client-secret, smtp-password
  given      = var.given_secret_versions
  depends_on = [module.bootstrap]
}

# ---- AWS: buckets, per-deployable federated roles, analytics

module "storage" {
  source            = "../../modules/aws_storage"
  prefix            = local.prefix
  dashboard_origins = var.dashboard_origins
}

module "aws_access" {
  source   = "../../modules/aws_access"
  prefix   = local.prefix
  audience = var.aws_web_identity_audience
  google_subjects = {
    for name in ["archive", "realtime", "persist", "subscriptions", "pulse", "notify"] : name => module.service_accounts.unique_ids[name]
  }
  archive_bucket_arn   = module.storage.bucket_arns["archive"]
  branding_bucket_arn  = module.storage.bucket_arns["branding"]
  database_iam_auth    = local.aurora
  database_connect_arn = local.aurora ? module.database[0].connect_arn : null
}

module "analytics" {
  source         = "../../modules/aws_analytics"
  prefix         = local.prefix
  archive_bucket = module.storage.archive_bucket
}

# ---- what each deployable reads (controlroom/settings.py)

locals {
  secret = module.secrets.versions
  # every deployable that reaches AWS: the region its requests and tokens are signed for
  aws_env = {
    AWS_REGION                = var.aws_region
    AWS_WEB_IDENTITY_AUDIENCE = module.aws_access.audience
  }
  # the database settings, per engine
  database_env = local.aurora ? {
    DATABASE_URL      = "postgresql://${module.database[0].runtime_user}@${module.database[0].proxy_endpoint}:5432/controlroom?sslmode=require"
    DATABASE_IAM_AUTH = "true"
    } : {
    CLOUD_SQL_INSTANCE = module.cloud_sql[0].instance_connection_name
    DATABASE_USER      = "controlroom_app"
    DATABASE_NAME      = module.cloud_sql[0].database_name
  }
  database_secrets = local.cloud_sql ? { DATABASE_PASSWORD = local.secret["database-password"] } : {}
  # archive and realtime use S3; with Aurora, persist and subscriptions sign the proxy's IAM
  # tokens with their own role too
  aws_for = {
    for name in ["archive", "realtime", "persist", "subscriptions", "pulse", "notify"] : name => (
      contains(["archive", "realtime"], name) || local.aurora
      ? merge(local.aws_env, { AWS_ROLE_ARN = module.aws_access.role_arns[name] })
      : {}
    )
  }
  redis_env = { REDIS_CA_CERT = module.data.redis_ca_certs }
  # Twitch's image CDN: the pulse stores avatar and preview URLs only from it, the dashboard's
  # CSP allows it in img-src
  twitch_image_origin = "https://static-cdn.jtvnw.net"
  # where notification deliveries go: the notify queue, its tasks signed as the notifier
  # (the function's URL is built, not read from module.functions: that would be a cycle)
  notify_env = {
    NOTIFY_URL     = "https://${var.region}-${var.project}.cloudfunctions.net/${local.prefix}-notify"
    NOTIFY_QUEUE   = "${local.prefix}-notify"
    NOTIFY_INVOKER = module.service_accounts.emails["notifier"]
  }
  common = {
    GOOGLE_CLOUD_PROJECT = var.project
    CLOUD_TASKS_LOCATION = var.region
  }
}

module "functions" {
  source           = "../../modules/gcp_functions"
  project          = var.project
  region           = var.region
  prefix           = local.prefix
  build_dir        = var.build_dir
  service_accounts = module.service_accounts.emails
  connector        = module.data.connector
  environment = {
    webhook = merge(local.common, {
      CLOUD_TASKS_QUEUE               = "${local.prefix}-persist"
      CLOUD_TASKS_QUEUE_SHARDS        = tostring(var.persist_queue_shards)
      PERSIST_URL                     = "https://${var.region}-${var.project}.cloudfunctions.net/${local.prefix}-persist"
      PERSIST_INVOKER_SERVICE_ACCOUNT = module.service_accounts.emails["tasks"]
      LEDGER_DATABASE                 = module.data.firestore_database
      TRUSTED_PROXY_HOPS              = "1" # Google's front end appends the client's address: per-IP limits need it
    })
    persist = merge(local.common, local.database_env, local.aws_for["persist"], local.redis_env, local.notify_env)
    subscriptions = merge(local.common, local.database_env, local.aws_for["subscriptions"], {
      TWITCH_CLIENT_ID      = var.twitch_client_id
      EVENTSUB_CALLBACK_URL = var.eventsub_callback_url
    })
    pulse = merge(local.common, local.database_env, local.aws_for["pulse"], local.redis_env, local.notify_env, {
      TWITCH_CLIENT_ID    = var.twitch_client_id
      TWITCH_IMAGE_ORIGIN = local.twitch_image_origin # avatars and previews stored only from here
    })
    # the queue's own settings: a long 429 is retried by a new task at the time it names
    notify = merge(local.common, local.database_env, local.aws_for["notify"], local.notify_env, {
      PUBLIC_URL = var.public_url # the dashboard's links in the posts
    })
    archive = merge(local.common, local.database_env, local.aws_for["archive"], {
      ARCHIVE_BUCKET         = module.storage.archive_bucket
      BRANDING_BUCKET        = module.storage.branding_bucket
      ARCHIVE_RETENTION_DAYS = tostring(var.hot_retention_days)
    })
  }
  secrets = {
    webhook = {
      EVENTSUB_SECRET          = local.secret["eventsub-secret"]
      EVENTSUB_SECRET_PREVIOUS = local.secret["eventsub-secret-previous"]
    }
    persist = merge(local.database_secrets, { REDIS_URL = local.secret["redis-url"] })
    subscriptions = merge(local.database_secrets, {
      EVENTSUB_SECRET      = local.secret["eventsub-secret"]
      TWITCH_CLIENT_SECRET = local.secret["twitch-client-secret"]
    })
    pulse = merge(local.database_secrets, {
      REDIS_URL            = local.secret["redis-url"]
      TWITCH_CLIENT_SECRET = local.secret["twitch-client-secret"]
    })
    notify = merge(local.database_secrets, {
      NOTIFICATION_KEYS = local.secret["notification-keys"]
    })
    archive = local.database_secrets
  }
}

module "messaging" {
  source               = "../../modules/gcp_messaging"
  project              = var.project
  region               = var.region
  prefix               = local.prefix
  service_accounts     = module.service_accounts.emails
  function_urls        = module.functions.urls
  persist_queue_shards = var.persist_queue_shards
}

module "realtime" {
  source             = "../../modules/gcp_realtime"
  depends_on         = [terraform_data.inputs]
  project            = var.project
  region             = var.region
  prefix             = local.prefix
  image              = var.realtime_image
  service_account    = module.service_accounts.emails["realtime"]
  connector          = module.data.connector
  min_instances      = var.realtime_min_instances
  max_instances      = var.realtime_max_instances
  cloud_sql_instance = local.cloud_sql ? module.cloud_sql[0].instance_connection_name : null
  environment = merge(local.common, local.database_env, local.aws_for["realtime"], local.redis_env, local.notify_env, {
    PUBLIC_URL                            = var.public_url
    JWT_AUDIENCE                          = var.jwt_audience
    OIDC_ISSUER                           = var.oidc_issuer
    OIDC_CLIENT_ID                        = var.oidc_client_id
    OIDC_PROVIDER_NAME                    = var.oidc_provider_name
    BRANDING_BUCKET                       = module.storage.branding_bucket
    TWITCH_CLIENT_ID                      = var.twitch_client_id
    TWITCH_IMAGE_ORIGIN                   = local.twitch_image_origin # the CSP's img-src for avatars and previews
    SUBSCRIPTIONS_URL                     = module.functions.urls["subscriptions"]
    SUBSCRIPTIONS_QUEUE                   = module.messaging.subscriptions_queue
    SUBSCRIPTIONS_INVOKER_SERVICE_ACCOUNT = module.service_accounts.emails["tasks"]
    TRUSTED_PROXY_HOPS                    = "1" # Cloud Run's front end appends the client's address
    WEB_CONCURRENCY                       = "2" # one relay process per vCPU, websocket-only (docs/realtime.md)
    SMTP_HOST                             = var.smtp_host
    SMTP_PORT                             = tostring(var.smtp_port)
    SMTP_USERNAME                         = var.smtp_username
    SMTP_FROM                             = var.smtp_from
  })
  secrets = merge(local.database_secrets, {
    REDIS_URL            = local.secret["redis-url"]
    TWITCH_CLIENT_SECRET = local.secret["twitch-client-secret"]
    TOKEN_SIGNING_KEYS   = local.secret["token-signing-keys"]
    OIDC_CLIENT_SECRET   = local.secret["oidc-client-secret"]
    SESSION_SECRET       = local.secret["session-secret"]
    NOTIFICATION_KEYS    = local.secret["notification-keys"] # seals channel URLs
    }, var.smtp_username != "" ? {
    SMTP_PASSWORD = local.secret["smtp-password"]
  } : {})
}

# ---- monitoring: log-based metrics, alerts, uptime check and dashboard; CloudWatch for Aurora

module "monitoring" {
  source              = "../../modules/gcp_monitoring"
  project             = var.project
  prefix              = local.prefix
  realtime_host       = regex("^https://([^/:]+)", var.public_url)[0]
  persist_queue       = module.messaging.persist_queue
  notification_emails = var.alert_emails
  cloud_sql_instance  = local.cloud_sql ? module.cloud_sql[0].instance_name : ""
  depends_on          = [module.bootstrap]
}

module "aws_monitoring" {
  source               = "../../modules/aws_monitoring"
  count                = local.aurora ? 1 : 0
  prefix               = local.prefix
  instance_identifiers = module.database[0].instance_identifiers
  proxy_name           = module.database[0].proxy_name
  alarm_emails         = var.alert_emails
}
