# CloudWatch alarms for Aurora Serverless v2 and its RDS Proxy, published to one SNS topic
# (encrypted with its own KMS key, which CloudWatch may use) with optional email subscribers.
# Each alarm's name ends with a row of docs/operations.md, "Alerts and what they mean".

variable "prefix" {
  description = "Name prefix for this environment."
  type        = string
}

variable "instance_identifiers" {
  description = "The cluster's instance identifiers (aws_database: <prefix>-controlroom-<n>)."
  type        = list(string)
}

variable "proxy_name" {
  description = "The RDS Proxy's name (aws_database: <prefix>-controlroom)."
  type        = string
}

variable "alarm_emails" {
  description = "Addresses subscribed to the alarm topic (each must confirm by mail); empty: subscribe something else to the topic_arn output."
  type        = list(string)
  default     = []
}

variable "proxy_client_connections_threshold" {
  description = "Client connections to the proxy, held for 10 minutes, that raise the connections alarm (the functions' and relays' pools together)."
  type        = number
  default     = 800
}

variable "freeable_memory_bytes" {
  description = "Freeable memory below which an instance alarms (Serverless v2 memory follows its ACUs: 2 GiB per ACU)."
  type        = number
  default     = 268435456 # 256 MiB
}

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

data "aws_region" "current" {}

locals {
  account = data.aws_caller_identity.current.account_id
  arn     = "arn:${data.aws_partition.current.partition}"
}

resource "aws_kms_key" "alarms" {
  description             = "${var.prefix} Creator Control Room alarm topic"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  # a key policy: "*" as the resource means this key. CloudWatch must be able to use it, which
  # is why the topic cannot use the AWS-managed SNS key.
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "AccountAdministers"
        Effect    = "Allow"
        Principal = { AWS = "${local.arn}:iam::${local.account}:root" }
        Action    = "kms:*"
        Resource  = "*"
      },
      {
        Sid       = "CloudWatchPublishesEncryptedAlarms"
        Effect    = "Allow"
        Principal = { Service = "cloudwatch.amazonaws.com" }
        Action    = ["kms:Decrypt", "kms:GenerateDataKey*"]
        Resource  = "*"
        Condition = { StringEquals = { "aws:SourceAccount" = local.account } }
      },
    ]
  })
}

resource "aws_kms_alias" "alarms" {
  name          = "alias/${var.prefix}-controlroom-alarms"
  target_key_id = aws_kms_key.alarms.key_id
}

resource "aws_sns_topic" "alarms" {
  name              = "${var.prefix}-controlroom-alarms"
  kms_master_key_id = aws_kms_key.alarms.arn
}

data "aws_iam_policy_document" "alarms_topic" {
  statement {
    sid       = "CloudWatchAlarmsOfThisAccount"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.alarms.arn]
    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }
    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = ["${local.arn}:cloudwatch:${data.aws_region.current.name}:${local.account}:alarm:*"]
    }
  }
}

resource "aws_sns_topic_policy" "alarms" {
  arn    = aws_sns_topic.alarms.arn
  policy = data.aws_iam_policy_document.alarms_topic.json
}

resource "aws_sns_topic_subscription" "email" {
  for_each  = toset(var.alarm_emails)
  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "email"
  endpoint  = each.value
}

locals {
  # per instance: what is measured, how, and what it means (the alarm's description)
  instance_alarms = {
    cpu = {
      name      = "Aurora CPU"
      metric    = "CPUUtilization"
      statistic = "Average"
      operator  = "GreaterThanThreshold"
      threshold = 80
      periods   = 10
      missing   = "missing"
      about     = "CPU above 80% of the instance's current capacity for 10 minutes. At max ACUs this is saturation: raise database_max_capacity."
    }
    acu = {
      name      = "Aurora ACU utilization"
      metric    = "ACUUtilization"
      statistic = "Average"
      operator  = "GreaterThanThreshold"
      threshold = 90
      periods   = 15
      missing   = "missing"
      about     = "Capacity above 90% of database_max_capacity for 15 minutes: the instance cannot scale further. Raise database_max_capacity or find the query (Performance Insights)."
    }
    memory = {
      name      = "Aurora freeable memory"
      metric    = "FreeableMemory"
      statistic = "Minimum"
      operator  = "LessThanThreshold"
      threshold = var.freeable_memory_bytes
      periods   = 10
      missing   = "missing"
      about     = "Freeable memory below ${var.freeable_memory_bytes} bytes for 10 minutes: the instance is short of memory at its current capacity (too many connections, or min capacity too low)."
    }
    connections = {
      name      = "Aurora connections"
      metric    = "DatabaseConnections"
      statistic = "Maximum"
      operator  = "GreaterThanThreshold"
      threshold = 500
      periods   = 10
      missing   = "notBreaching"
      about     = "More than 500 connections on an instance for 10 minutes: something bypasses the proxy's pool (migrations and the CLI use the writer endpoint directly)."
    }
    deadlocks = {
      name      = "Aurora deadlocks"
      metric    = "Deadlocks"
      statistic = "Average"
      operator  = "GreaterThanThreshold"
      threshold = 0.1 # per second
      periods   = 5
      missing   = "notBreaching"
      about     = "More than one deadlock every 10 seconds for 5 minutes. The PostgreSQL log (exported to CloudWatch Logs) names the statements."
    }
    transaction-ids = {
      name      = "Aurora transaction ID age"
      metric    = "MaximumUsedTransactionIDs"
      statistic = "Maximum"
      operator  = "GreaterThanThreshold"
      threshold = 1000000000
      periods   = 15
      missing   = "missing"
      about     = "The oldest unfrozen transaction id is past 1 billion (wraparound stops writes at about 2 billion): autovacuum is falling behind on the events table."
    }
  }

  proxy_alarms = {
    client-connections = {
      name      = "RDS Proxy client connections"
      metric    = "ClientConnections"
      statistic = "Maximum"
      operator  = "GreaterThanThreshold"
      threshold = var.proxy_client_connections_threshold
      periods   = 10
      about     = "More than ${var.proxy_client_connections_threshold} client connections for 10 minutes: the functions' instances times their pool size, plus the relays', is near what the proxy should carry. Check max instances and pool sizes."
    }
    session-pinned = {
      name      = "RDS Proxy pinned sessions"
      metric    = "DatabaseConnectionsCurrentlySessionPinned"
      statistic = "Maximum"
      operator  = "GreaterThanThreshold"
      threshold = 20
      periods   = 15
      about     = "More than 20 database connections pinned to one client for 15 minutes: pinning (session-level SET, prepared statements outside a transaction, advisory locks held across statements) defeats the pool. The archive's advisory lock pins one while it runs; more means a new code path pins."
    }
    borrow-latency = {
      name      = "RDS Proxy borrow latency"
      metric    = "DatabaseConnectionsBorrowLatency"
      statistic = "Average"
      operator  = "GreaterThanThreshold"
      threshold = 100000 # microseconds
      periods   = 5
      about     = "Borrowing a database connection took more than 100 ms on average for 5 minutes: the pool is exhausted (max_connections_percent) or the cluster is slow to open connections."
    }
    setup-failed = {
      name      = "RDS Proxy connection setup failures"
      metric    = "DatabaseConnectionsSetupFailed"
      statistic = "Sum"
      operator  = "GreaterThanThreshold"
      threshold = 0
      periods   = 5
      about     = "The proxy could not open connections to Aurora for 5 minutes: the cluster is down or failing over, its security group changed, or the proxy's secret no longer matches the runtime role's password."
    }
    auth-failed = {
      name      = "RDS Proxy authentication failures"
      metric    = "ClientConnectionsSetupFailedAuth"
      statistic = "Sum"
      operator  = "GreaterThanThreshold"
      threshold = 10
      periods   = 5
      about     = "More than 10 clients a minute failed to sign in for 5 minutes: IAM tokens refused (the federated role lost rds-db:connect, or clocks drift) or someone is guessing."
    }
  }

  instance_pairs = {
    for pair in setproduct(keys(local.instance_alarms), var.instance_identifiers) :
    "${pair[0]}/${pair[1]}" => { alarm = pair[0], instance = pair[1] }
  }
  operations = "Runbook: docs/operations.md, \"Alerts and what they mean\"."
}

resource "aws_cloudwatch_metric_alarm" "instance" {
  for_each            = local.instance_pairs
  alarm_name          = "${var.prefix}: ${local.instance_alarms[each.value.alarm].name} (${each.value.instance})"
  alarm_description   = "${local.instance_alarms[each.value.alarm].about} ${local.operations}"
  namespace           = "AWS/RDS"
  metric_name         = local.instance_alarms[each.value.alarm].metric
  dimensions          = { DBInstanceIdentifier = each.value.instance }
  statistic           = local.instance_alarms[each.value.alarm].statistic
  period              = 60
  evaluation_periods  = local.instance_alarms[each.value.alarm].periods
  comparison_operator = local.instance_alarms[each.value.alarm].operator
  threshold           = local.instance_alarms[each.value.alarm].threshold
  treat_missing_data  = local.instance_alarms[each.value.alarm].missing
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
}

resource "aws_cloudwatch_metric_alarm" "proxy" {
  for_each            = local.proxy_alarms
  alarm_name          = "${var.prefix}: ${each.value.name}"
  alarm_description   = "${each.value.about} ${local.operations}"
  namespace           = "AWS/RDS"
  metric_name         = each.value.metric
  dimensions          = { ProxyName = var.proxy_name }
  statistic           = each.value.statistic
  period              = 60
  evaluation_periods  = each.value.periods
  comparison_operator = each.value.operator
  threshold           = each.value.threshold
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
}

output "topic_arn" {
  description = "The SNS topic every alarm publishes to (subscribe a pager or chat integration here)."
  value       = aws_sns_topic.alarms.arn
}

output "alarm_names" {
  description = "Every alarm's name."
  value = concat(
    [for a in aws_cloudwatch_metric_alarm.instance : a.alarm_name],
    [for a in aws_cloudwatch_metric_alarm.proxy : a.alarm_name],
  )
}
