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

output "database_proxy_endpoint" {
  description = "RDS Proxy host for DATABASE_URL (runtime role, sslmode=require)."
  value       = module.database.proxy_endpoint
}

output "database_cluster_endpoint" {
  description = "Aurora writer endpoint for migrations as the owner role."
  value       = module.database.cluster_endpoint
}

output "redis_host" {
  description = "Memorystore host for REDIS_URL."
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

output "aws_role_arn" {
  description = "The role Google workloads assume in AWS."
  value       = module.aws_access.role_arn
}
