# Every environment, described once: Google Cloud for the services, AWS for storage, the
# database and analytics. envs/<env>/ links these files and adds only its backend.tf and
# environment.auto.tfvars.

terraform {
  required_version = ">= 1.6"
  required_providers {
    google  = { source = "hashicorp/google", version = "~> 6.10" }
    aws     = { source = "hashicorp/aws", version = "~> 5.80" }
    archive = { source = "hashicorp/archive", version = "~> 2.6" }
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
  prefix = "cr-${var.environment}"
}

module "service_accounts" {
  source  = "../../modules/gcp_service_accounts"
  project = var.project
  prefix  = local.prefix
}

module "data" {
  source          = "../../modules/gcp_data"
  project         = var.project
  region          = var.region
  prefix          = local.prefix
  network         = var.network
  connector_cidr  = var.connector_cidr
  redis_memory_gb = var.redis_memory_gb
}

module "secrets" {
  source  = "../../modules/gcp_secrets"
  project = var.project
  prefix  = local.prefix
  readers = {
    eventsub-secret          = [module.service_accounts.emails["webhook"], module.service_accounts.emails["subscriptions"]]
    eventsub-secret-previous = [module.service_accounts.emails["webhook"]]
    database-url = [
      module.service_accounts.emails["persist"], module.service_accounts.emails["realtime"],
      module.service_accounts.emails["subscriptions"], module.service_accounts.emails["archive"],
    ]
    redis-url            = [module.service_accounts.emails["persist"], module.service_accounts.emails["realtime"]]
    twitch-client-secret = [module.service_accounts.emails["subscriptions"], module.service_accounts.emails["realtime"]]
    token-signing-keys   = [module.service_accounts.emails["realtime"]]
    oidc-client-secret   = [module.service_accounts.emails["realtime"]]
    session-secret       = [module.service_accounts.emails["realtime"]]
    smtp-password        = [module.service_accounts.emails["realtime"]]
  }
}

module "storage" {
  source            = "../../modules/aws_storage"
  prefix            = local.prefix
  dashboard_origins = var.dashboard_origins
}

module "aws_access" {
  source              = "../../modules/aws_access"
  prefix              = local.prefix
  google_subjects     = [module.service_accounts.unique_ids["archive"], module.service_accounts.unique_ids["realtime"]]
  archive_bucket_arn  = module.storage.bucket_arns["archive"]
  branding_bucket_arn = module.storage.bucket_arns["branding"]
}

module "database" {
  source                 = "../../modules/aws_database"
  prefix                 = local.prefix
  subnet_ids             = var.aws_subnet_ids
  vpc_security_group_ids = var.aws_security_group_ids
  max_capacity           = var.database_max_capacity
}

module "analytics" {
  source         = "../../modules/aws_analytics"
  prefix         = local.prefix
  archive_bucket = module.storage.archive_bucket
}

locals {
  queue_base = "projects/${var.project}/locations/${var.region}/queues"
  common = {
    GOOGLE_CLOUD_PROJECT = var.project
    CLOUD_TASKS_LOCATION = var.region
    AWS_ROLE_ARN         = module.aws_access.role_arn
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
      PERSIST_URL                     = "https://${var.region}-${var.project}.cloudfunctions.net/${local.prefix}-persist"
      PERSIST_INVOKER_SERVICE_ACCOUNT = module.service_accounts.emails["tasks"]
      LEDGER_DATABASE                 = module.data.firestore_database
    })
    persist       = local.common
    subscriptions = merge(local.common, { TWITCH_CLIENT_ID = var.twitch_client_id, EVENTSUB_CALLBACK_URL = var.eventsub_callback_url })
    archive       = merge(local.common, { ARCHIVE_BUCKET = module.storage.archive_bucket, BRANDING_BUCKET = module.storage.branding_bucket, ARCHIVE_RETENTION_DAYS = tostring(var.hot_retention_days) })
  }
  secrets = {
    webhook       = { EVENTSUB_SECRET = module.secrets.ids["eventsub-secret"], EVENTSUB_SECRET_PREVIOUS = module.secrets.ids["eventsub-secret-previous"] }
    persist       = { DATABASE_URL = module.secrets.ids["database-url"], REDIS_URL = module.secrets.ids["redis-url"] }
    subscriptions = { DATABASE_URL = module.secrets.ids["database-url"], EVENTSUB_SECRET = module.secrets.ids["eventsub-secret"], TWITCH_CLIENT_SECRET = module.secrets.ids["twitch-client-secret"] }
    archive       = { DATABASE_URL = module.secrets.ids["database-url"] }
  }
}

module "messaging" {
  source           = "../../modules/gcp_messaging"
  project          = var.project
  region           = var.region
  prefix           = local.prefix
  service_accounts = module.service_accounts.emails
  function_urls    = module.functions.urls
}

module "realtime" {
  source          = "../../modules/gcp_realtime"
  project         = var.project
  region          = var.region
  prefix          = local.prefix
  image           = var.realtime_image
  service_account = module.service_accounts.emails["realtime"]
  connector       = module.data.connector
  min_instances   = var.realtime_min_instances
  max_instances   = var.realtime_max_instances
  environment = merge(local.common, {
    PUBLIC_URL                            = var.public_url
    JWT_AUDIENCE                          = var.jwt_audience
    OIDC_ISSUER                           = var.oidc_issuer
    OIDC_CLIENT_ID                        = var.oidc_client_id
    OIDC_PROVIDER_NAME                    = var.oidc_provider_name
    BRANDING_BUCKET                       = module.storage.branding_bucket
    TWITCH_CLIENT_ID                      = var.twitch_client_id
    SUBSCRIPTIONS_URL                     = module.functions.urls["subscriptions"]
    SUBSCRIPTIONS_QUEUE                   = module.messaging.subscriptions_queue
    SUBSCRIPTIONS_INVOKER_SERVICE_ACCOUNT = module.service_accounts.emails["tasks"]
    SMTP_HOST                             = var.smtp_host
    SMTP_PORT                             = tostring(var.smtp_port)
    SMTP_USERNAME                         = var.smtp_username
    SMTP_FROM                             = var.smtp_from
  })
  secrets = {
    DATABASE_URL         = module.secrets.ids["database-url"]
    REDIS_URL            = module.secrets.ids["redis-url"]
    TWITCH_CLIENT_SECRET = module.secrets.ids["twitch-client-secret"]
    TOKEN_SIGNING_KEYS   = module.secrets.ids["token-signing-keys"]
    OIDC_CLIENT_SECRET   = module.secrets.ids["oidc-client-secret"]
    SESSION_SECRET       = module.secrets.ids["session-secret"]
    SMTP_PASSWORD        = module.secrets.ids["smtp-password"]
  }
}
