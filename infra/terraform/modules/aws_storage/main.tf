# The archive bucket (versioned, encrypted, private, TLS only, lifecycle) and the branding
# bucket (CORS for the dashboard's pre-signed uploads, tenant prefixes).

variable "prefix" {
  description = "Name prefix for this environment."
  type        = string
}

variable "dashboard_origins" {
  description = "Origins of the dashboard allowed to PUT logos with pre-signed URLs."
  type        = list(string)
  validation {
    condition     = alltrue([for o in var.dashboard_origins : startswith(o, "https://")])
    error_message = "dashboard origins must be https URLs."
  }
}

variable "infrequent_access_days" {
  description = "Days before archive objects move to STANDARD_IA (S3 requires at least 30)."
  type        = number
  default     = 30
  validation {
    condition     = var.infrequent_access_days >= 30
    error_message = "S3 moves objects to STANDARD_IA after 30 days at the earliest."
  }
}

variable "glacier_days" {
  description = "Days before archive objects move to a colder class: Parquet to GLACIER_IR (Athena still reads it), NDJSON to GLACIER."
  type        = number
  default     = 90
}

variable "noncurrent_days" {
  description = "Days a replaced or deleted archive object version is kept."
  type        = number
  default     = 30
}

variable "abort_multipart_days" {
  description = "Days after which incomplete multipart uploads are aborted."
  type        = number
  default     = 7
}

resource "aws_s3_bucket" "bucket" {
  # checkov:skip=CKV2_AWS_6: the public access block is aws_s3_bucket_public_access_block.bucket (for_each), which checkov cannot follow
  # checkov:skip=CKV_AWS_21: versioning is aws_s3_bucket_versioning.bucket (for_each), which checkov cannot follow
  # checkov:skip=CKV_AWS_145: KMS encryption is aws_s3_bucket_server_side_encryption_configuration.bucket (for_each)
  # checkov:skip=CKV2_AWS_61: the archive has its lifecycle below; branding logos are few, small and kept while in use
  # checkov:skip=CKV_AWS_18: access is audited with CloudTrail data events at the organization level, not per-bucket logs
  # checkov:skip=CKV_AWS_144: the archive is itself a copy of PostgreSQL; cross-region replication is the platform team's cost decision
  # checkov:skip=CKV2_AWS_62: nothing consumes object events; the archive manifest is the record of what was written
  for_each = toset(["archive", "branding"])
  bucket   = "${var.prefix}-controlroom-${each.key}"
}

resource "aws_s3_bucket_versioning" "bucket" {
  for_each = aws_s3_bucket.bucket
  bucket   = each.value.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "bucket" {
  for_each = aws_s3_bucket.bucket
  bucket   = each.value.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "aws:kms"
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_public_access_block" "bucket" {
  for_each                = aws_s3_bucket.bucket
  bucket                  = each.value.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

data "aws_iam_policy_document" "tls_only" {
  for_each = aws_s3_bucket.bucket
  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [each.value.arn, "${each.value.arn}/*"]
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

resource "aws_s3_bucket_policy" "tls_only" {
  for_each = aws_s3_bucket.bucket
  bucket   = each.value.id
  policy   = data.aws_iam_policy_document.tls_only[each.key].json
}

# Athena's table reads events/parquet/ only, and skips objects in GLACIER or DEEP_ARCHIVE:
# Parquet stays in classes Athena reads (STANDARD_IA, then GLACIER_IR); the NDJSON copy,
# which nothing queries, may go to GLACIER. controlroom/adapters/s3.py lifecycle_rules sets
# the same rules on the local stack's bucket (tests/unit/test_athena.py checks they agree).
locals {
  cold_storage_class = {
    parquet = "GLACIER_IR"
    ndjson  = "GLACIER"
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "archive" {
  bucket = aws_s3_bucket.bucket["archive"].id
  lifecycle {
    precondition {
      condition     = var.glacier_days >= var.infrequent_access_days + 30
      error_message = "objects stay 30 days in STANDARD_IA before a colder class: glacier_days >= infrequent_access_days + 30."
    }
  }
  dynamic "rule" {
    for_each = local.cold_storage_class
    content {
      id     = "${rule.key}-tiering"
      status = "Enabled"
      filter {
        prefix = "events/${rule.key}/"
      }
      transition {
        days          = var.infrequent_access_days
        storage_class = "STANDARD_IA"
      }
      transition {
        days          = var.glacier_days
        storage_class = rule.value
      }
      noncurrent_version_expiration {
        noncurrent_days = var.noncurrent_days
      }
    }
  }
  rule {
    id     = "abort-incomplete-multipart"
    status = "Enabled"
    filter {
      prefix = ""
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = var.abort_multipart_days
    }
  }
}

resource "aws_s3_bucket_cors_configuration" "branding" {
  bucket = aws_s3_bucket.bucket["branding"].id
  cors_rule {
    allowed_origins = var.dashboard_origins
    allowed_methods = ["PUT", "GET"]
    allowed_headers = ["Content-Type"]
    max_age_seconds = 3600
  }
}

output "archive_bucket" {
  description = "Name of the archive bucket."
  value       = aws_s3_bucket.bucket["archive"].id
}

output "branding_bucket" {
  description = "Name of the branding bucket."
  value       = aws_s3_bucket.bucket["branding"].id
}

output "bucket_arns" {
  description = "ARN per bucket."
  value       = { for k, b in aws_s3_bucket.bucket : k => b.arn }
}
