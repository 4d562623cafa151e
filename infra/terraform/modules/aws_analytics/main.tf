# The archive as an Athena table: a Glue table over the Parquet tree only, with partition
# projection (no crawler, no MSCK REPAIR), a workgroup whose settings clients cannot override,
# its results bucket, and a policy the platform team attaches to whoever queries.
#
# The archive writes events/parquet/company_id=<id>/date=<YYYY-MM-DD>/part-*.parquet and the
# NDJSON copy under events/ndjson/, which this table never reads. The columns are the Parquet
# schema controlroom/usecases/archive.py writes (PARQUET_SCHEMA), in its order; its
# company_id column is the partition key here (tests/unit/test_athena.py checks both).

variable "prefix" {
  description = "Name prefix for this environment."
  type        = string
}

variable "archive_bucket" {
  description = "Name of the archive bucket."
  type        = string
}

variable "first_archive_day" {
  description = "First day (YYYY-MM-DD, UTC) the partition projection offers; days before it are never read."
  type        = string
  default     = "2024-01-01"
  validation {
    condition     = can(regex("^\\d{4}-\\d{2}-\\d{2}$", var.first_archive_day))
    error_message = "first_archive_day is a date as YYYY-MM-DD."
  }
}

variable "results_expiration_days" {
  description = "Days Athena query results are kept in the results bucket."
  type        = number
  default     = 30
  validation {
    condition     = var.results_expiration_days >= 1
    error_message = "results are kept at least one day."
  }
}

variable "bytes_scanned_cutoff_per_query" {
  description = "A query that would scan more bytes than this is cancelled (a cost guard; at least 10 MB)."
  type        = number
  default     = 10737418240
  validation {
    condition     = var.bytes_scanned_cutoff_per_query >= 10485760
    error_message = "Athena's smallest cutoff is 10 MB (10485760 bytes)."
  }
}

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

locals {
  # name and Hive type of every Parquet column but company_id (the partition key), in the
  # file's order: pyarrow string -> string, int64 -> bigint, int32 -> int,
  # timestamp[us, tz=UTC] -> timestamp
  columns = [
    ["seq", "bigint"],
    ["creator_id", "string"],
    ["twitch_message_id", "string"],
    ["dedup_key", "string"],
    ["type", "string"],
    ["version", "string"],
    ["topic", "string"],
    ["occurred_at", "timestamp"],
    ["received_at", "timestamp"],
    ["broadcaster_user_id", "string"],
    ["actor_user_id", "string"],
    ["actor_login", "string"],
    ["actor_name", "string"],
    ["target_user_id", "string"],
    ["target_login", "string"],
    ["target_name", "string"],
    ["amount", "bigint"],
    ["tier", "string"],
    ["title", "string"],
    ["category_name", "string"],
    ["duration_seconds", "int"],
    ["message_text", "string"],
    ["outcome", "string"],
    ["level", "int"],
    ["payload", "string"],
  ]
  parquet_root = "s3://${var.archive_bucket}/events/parquet/"
  archive_arn  = "arn:${data.aws_partition.current.partition}:s3:::${var.archive_bucket}"
}

resource "aws_glue_catalog_database" "archive" {
  name        = "${replace(var.prefix, "-", "_")}_controlroom"
  description = "Creator Control Room's event archive."
}

resource "aws_glue_catalog_table" "events" {
  database_name = aws_glue_catalog_database.archive.name
  name          = "events"
  description   = "Archived events, one Parquet part or more per company-day. Every query names one company_id."
  table_type    = "EXTERNAL_TABLE"
  parameters = {
    "EXTERNAL"            = "TRUE"
    "classification"      = "parquet"
    "parquet.compression" = "ZSTD"
    "projection.enabled"  = "true"
    # company ids are UUIDs: injected, so a query must name its company (one tenant at a time)
    "projection.company_id.type"   = "injected"
    "projection.day.type"          = "date"
    "projection.day.format"        = "yyyy-MM-dd"
    "projection.day.range"         = "${var.first_archive_day},NOW"
    "projection.day.interval"      = "1"
    "projection.day.interval.unit" = "DAYS"
    # the path keeps the archive's date=; the column is `day` (DATE is reserved in Athena SQL)
    "storage.location.template" = "${local.parquet_root}company_id=$${company_id}/date=$${day}/"
  }
  partition_keys {
    name    = "company_id"
    type    = "string"
    comment = "The company (tenant) id, a UUID."
  }
  partition_keys {
    name    = "day"
    type    = "string"
    comment = "The UTC day the events occurred, YYYY-MM-DD."
  }
  storage_descriptor {
    location      = local.parquet_root
    input_format  = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
    output_format = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"
    ser_de_info {
      name                  = "parquet"
      serialization_library = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
      parameters = {
        "serialization.format" = "1"
      }
    }
    dynamic "columns" {
      for_each = local.columns
      content {
        name = columns.value[0]
        type = columns.value[1]
      }
    }
  }
}

# --- query results -------------------------------------------------------------------------

resource "aws_kms_key" "results" {
  description             = "${var.prefix} Athena query results of the Control Room archive"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      # the account administers the key; who may use it is granted by IAM policies (query below)
      Sid       = "AccountAdministers"
      Effect    = "Allow"
      Principal = { AWS = "arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root" }
      Action    = "kms:*"
      Resource  = "*"
    }]
  })
}

resource "aws_s3_bucket" "results" {
  # checkov:skip=CKV_AWS_18: access is audited with CloudTrail data events at the organization level, not per-bucket logs
  # checkov:skip=CKV_AWS_144: query results are recomputable from the archive and expire; replication would only add cost
  # checkov:skip=CKV2_AWS_62: nothing consumes object events of query results
  bucket = "${var.prefix}-controlroom-athena-results"
}

resource "aws_s3_bucket_versioning" "results" {
  bucket = aws_s3_bucket.results.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "results" {
  bucket = aws_s3_bucket.results.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.results.arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_public_access_block" "results" {
  bucket                  = aws_s3_bucket.results.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

data "aws_iam_policy_document" "results_tls_only" {
  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.results.arn, "${aws_s3_bucket.results.arn}/*"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "results_tls_only" {
  bucket = aws_s3_bucket.results.id
  policy = data.aws_iam_policy_document.results_tls_only.json
}

resource "aws_s3_bucket_lifecycle_configuration" "results" {
  bucket = aws_s3_bucket.results.id
  rule {
    id     = "expire-results"
    status = "Enabled"
    filter {
      prefix = ""
    }
    expiration {
      days = var.results_expiration_days
    }
    noncurrent_version_expiration {
      noncurrent_days = 1
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }
}

resource "aws_athena_workgroup" "archive" {
  name        = "${var.prefix}-controlroom"
  description = "Queries of the Control Room archive; results encrypted, scans capped."
  state       = "ENABLED"
  configuration {
    enforce_workgroup_configuration    = true
    publish_cloudwatch_metrics_enabled = true
    bytes_scanned_cutoff_per_query     = var.bytes_scanned_cutoff_per_query
    engine_version {
      selected_engine_version = "Athena engine version 3"
    }
    result_configuration {
      output_location = "s3://${aws_s3_bucket.results.id}/results/"
      encryption_configuration {
        encryption_option = "SSE_KMS"
        kms_key_arn       = aws_kms_key.results.arn
      }
    }
  }
}

# --- who may query ---------------------------------------------------------------------------

data "aws_iam_policy_document" "query" {
  statement {
    sid = "Workgroup"
    actions = [
      "athena:StartQueryExecution", "athena:StopQueryExecution", "athena:GetQueryExecution",
      "athena:GetQueryResults", "athena:GetWorkGroup", "athena:ListQueryExecutions",
    ]
    resources = [aws_athena_workgroup.archive.arn]
  }
  statement {
    sid     = "Catalog"
    actions = ["glue:GetDatabase", "glue:GetTable", "glue:GetPartitions"]
    resources = [
      "arn:${data.aws_partition.current.partition}:glue:*:${data.aws_caller_identity.current.account_id}:catalog",
      aws_glue_catalog_database.archive.arn,
      aws_glue_catalog_table.events.arn,
    ]
  }
  statement {
    sid       = "ReadParquet"
    actions   = ["s3:GetObject"]
    resources = ["${local.archive_arn}/events/parquet/*"]
  }
  statement {
    sid       = "ArchiveBucket"
    actions   = ["s3:GetBucketLocation"]
    resources = [local.archive_arn]
  }
  statement {
    sid       = "ListParquet"
    actions   = ["s3:ListBucket"]
    resources = [local.archive_arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["events/parquet/*"]
    }
  }
  statement {
    sid       = "Results"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"]
    resources = ["${aws_s3_bucket.results.arn}/results/*"]
  }
  statement {
    sid       = "ResultsBucket"
    actions   = ["s3:ListBucket", "s3:GetBucketLocation", "s3:ListBucketMultipartUploads"]
    resources = [aws_s3_bucket.results.arn]
  }
  statement {
    sid       = "ResultsKey"
    actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
    resources = [aws_kms_key.results.arn]
  }
}

resource "aws_iam_policy" "query" {
  name        = "${var.prefix}-controlroom-archive-query"
  description = "Query the Control Room archive with Athena (its workgroup, table, Parquet and results)."
  policy      = data.aws_iam_policy_document.query.json
}

output "table" {
  description = "Athena table of the archive (database.table)."
  value       = "${aws_glue_catalog_database.archive.name}.${aws_glue_catalog_table.events.name}"
}

output "workgroup" {
  description = "Athena workgroup to query the archive in (its settings are enforced)."
  value       = aws_athena_workgroup.archive.name
}

output "results_bucket" {
  description = "Bucket holding Athena's query results (encrypted, expiring)."
  value       = aws_s3_bucket.results.id
}

output "query_policy_arn" {
  description = "IAM policy to attach to the people or roles that query the archive."
  value       = aws_iam_policy.query.arn
}
