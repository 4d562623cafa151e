# Aurora PostgreSQL Serverless v2 behind an RDS Proxy (TLS required), credentials in
# Secrets Manager. The runtime role and the owner role are created by
# `controlroom db bootstrap` (docs/deploy.md); the proxy carries the runtime role.

variable "prefix" {
  description = "Name prefix for this environment."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets for the cluster and the proxy (at least two zones)."
  type        = list(string)
  validation {
    condition     = length(var.subnet_ids) >= 2
    error_message = "give at least two subnets in different zones."
  }
}

variable "vpc_security_group_ids" {
  description = "Security groups allowing PostgreSQL from the proxy and the workloads' egress."
  type        = list(string)
}

variable "min_capacity" {
  description = "Minimum Aurora capacity units."
  type        = number
  default     = 0.5
}

variable "max_capacity" {
  description = "Maximum Aurora capacity units."
  type        = number
  default     = 8
  validation {
    condition     = var.max_capacity >= 1 && var.max_capacity <= 128
    error_message = "max_capacity must be between 1 and 128."
  }
}

resource "aws_db_subnet_group" "db" {
  name       = "${var.prefix}-controlroom"
  subnet_ids = var.subnet_ids
}

resource "aws_rds_cluster" "db" {
  # checkov:skip=CKV_AWS_327: encrypted with the AWS-managed key; a customer-managed key is an organization-wide decision
  # checkov:skip=CKV2_AWS_8: Aurora automated backups (14 days) and deletion protection; AWS Backup plans are managed centrally
  # checkov:skip=CKV2_AWS_27: statement logging would write tenant data into logs; errors and slow queries are enough
  cluster_identifier                  = "${var.prefix}-controlroom"
  engine                              = "aurora-postgresql"
  engine_mode                         = "provisioned"
  engine_version                      = "16.4"
  database_name                       = "controlroom"
  master_username                     = "controlroom_admin"
  manage_master_user_password         = true
  db_subnet_group_name                = aws_db_subnet_group.db.name
  vpc_security_group_ids              = var.vpc_security_group_ids
  storage_encrypted                   = true
  iam_database_authentication_enabled = true
  deletion_protection                 = true
  backup_retention_period             = 14
  copy_tags_to_snapshot               = true
  enabled_cloudwatch_logs_exports     = ["postgresql"]
  serverlessv2_scaling_configuration {
    min_capacity = var.min_capacity
    max_capacity = var.max_capacity
  }
}

resource "aws_rds_cluster_instance" "db" {
  # checkov:skip=CKV_AWS_118: Performance Insights is on; enhanced monitoring needs a monitoring role that is left to the platform team
  # checkov:skip=CKV_AWS_354: Performance Insights uses the AWS-managed key, as the cluster does
  count                        = 2
  identifier                   = "${var.prefix}-controlroom-${count.index}"
  cluster_identifier           = aws_rds_cluster.db.id
  instance_class               = "db.serverless"
  engine                       = aws_rds_cluster.db.engine
  engine_version               = aws_rds_cluster.db.engine_version
  auto_minor_version_upgrade   = true
  performance_insights_enabled = true
}

resource "aws_secretsmanager_secret" "runtime" {
  # checkov:skip=CKV_AWS_149: encrypted with the AWS-managed key, as the cluster is
  # checkov:skip=CKV2_AWS_57: rotating controlroom_app's password also needs `controlroom db bootstrap`; the procedure is in docs/deploy.md
  name        = "${var.prefix}/controlroom/runtime-role"
  description = "username/password of controlroom_app, used by the RDS Proxy"
}

data "aws_iam_policy_document" "proxy_trust" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["rds.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "proxy" {
  name               = "${var.prefix}-controlroom-rds-proxy"
  assume_role_policy = data.aws_iam_policy_document.proxy_trust.json
}

data "aws_iam_policy_document" "proxy_secrets" {
  statement {
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [aws_secretsmanager_secret.runtime.arn]
  }
}

resource "aws_iam_role_policy" "proxy_secrets" {
  name   = "read-runtime-secret"
  role   = aws_iam_role.proxy.id
  policy = data.aws_iam_policy_document.proxy_secrets.json
}

resource "aws_db_proxy" "db" {
  name                   = "${var.prefix}-controlroom"
  engine_family          = "POSTGRESQL"
  require_tls            = true
  role_arn               = aws_iam_role.proxy.arn
  vpc_subnet_ids         = var.subnet_ids
  vpc_security_group_ids = var.vpc_security_group_ids
  auth {
    auth_scheme = "SECRETS"
    iam_auth    = "DISABLED"
    secret_arn  = aws_secretsmanager_secret.runtime.arn
  }
}

resource "aws_db_proxy_default_target_group" "db" {
  db_proxy_name = aws_db_proxy.db.name
  connection_pool_config {
    max_connections_percent = 90
  }
}

resource "aws_db_proxy_target" "db" {
  db_proxy_name         = aws_db_proxy.db.name
  target_group_name     = aws_db_proxy_default_target_group.db.name
  db_cluster_identifier = aws_rds_cluster.db.id
}

output "proxy_endpoint" {
  description = "Host of the RDS Proxy (DATABASE_URL points here, sslmode=require)."
  value       = aws_db_proxy.db.endpoint
}

output "cluster_endpoint" {
  description = "Writer endpoint, for migrations as the owner role."
  value       = aws_rds_cluster.db.endpoint
}

output "runtime_secret_arn" {
  description = "Secrets Manager secret holding the runtime role's credentials."
  value       = aws_secretsmanager_secret.runtime.arn
}
