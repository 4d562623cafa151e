output "webhook_url" {
  description = "The EventSub callback (what Twitch POSTs to)."
  value       = module.functions.urls["webhook"]
}

output "function_urls" {
  description = "Every function's URL."
  value       = module.functions.urls
}

output "dashboard_url" {
  description = "Dashboard, REST API and Socket.IO origin."
  value       = module.realtime.url
}

output "database_engine" {
  description = "aurora or cloud_sql."
  value       = var.database_engine
}

output "database_proxy_endpoint" {
  description = "RDS Proxy host in DATABASE_URL (runtime role, TLS, IAM tokens); null with Cloud SQL."
  value       = one(module.database[*].proxy_endpoint)
}

output "database_cluster_endpoint" {
  description = "Aurora writer endpoint for `controlroom db bootstrap` and migrations as the owner role; null with Cloud SQL."
  value       = one(module.database[*].cluster_endpoint)
}

output "database_runtime_secret_arn" {
  description = "Secrets Manager secret with controlroom_app's password (what the proxy signs in to Aurora with; DATABASE_APP_PASSWORD of the bootstrap); null with Cloud SQL."
  value       = one(module.database[*].runtime_secret_arn)
}

output "cloud_sql_instance" {
  description = "Cloud SQL instance connection name (CLOUD_SQL_INSTANCE); null with Aurora."
  value       = one(module.cloud_sql[*].instance_connection_name)
}

output "vpn_tunnels" {
  description = "The four HA VPN tunnels to AWS (each should show an established BGP session); empty with Cloud SQL."
  value       = flatten(module.gcp_vpn[*].tunnels)
}

output "redis_host" {
  description = "Memorystore host (the redis-url secret is written by terraform)."
  value       = module.data.redis_host
}

output "archive_bucket" {
  description = "The archive bucket."
  value       = module.storage.archive_bucket
}

output "branding_bucket" {
  description = "The branding bucket."
  value       = module.storage.branding_bucket
}

output "athena_table" {
  description = "The archive's Athena table."
  value       = module.analytics.table
}

output "aws_role_arns" {
  description = "Deployable => the AWS role its Google service account assumes (its AWS_ROLE_ARN)."
  value       = module.aws_access.role_arns
}

output "image_repository" {
  description = "Artifact Registry repository CI pushes the realtime image to."
  value       = module.bootstrap.image_repository
}

output "deploy_service_account" {
  description = "Google service account CI deploys as."
  value       = module.bootstrap.deploy_service_account
}

output "workload_identity_provider" {
  description = "Google workload identity provider of the GitHub workflows."
  value       = module.bootstrap.workload_identity_provider
}

output "aws_deploy_role_arn" {
  description = "AWS role CI deploys as (GitHub OIDC)."
  value       = module.aws_ci.deploy_role_arn
}

output "secret_names" {
  description = "Secret Manager secrets terraform created, each with its first version."
  value       = module.secrets.ids
}

output "athena_workgroup" {
  description = "Athena workgroup to query the archive in (settings enforced, results encrypted)."
  value       = module.analytics.workgroup
}

output "athena_results_bucket" {
  description = "Bucket of Athena's query results (encrypted, expiring)."
  value       = module.analytics.results_bucket
}

output "archive_query_policy_arn" {
  description = "IAM policy to attach to whoever queries the archive with Athena."
  value       = module.analytics.query_policy_arn
}
