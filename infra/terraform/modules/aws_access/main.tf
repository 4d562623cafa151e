# AWS access for the Google workloads without long-lived keys: a role trusted through web
# identity federation with Google, for exactly the service accounts that need S3, scoped to
# the prefixes they use.

variable "prefix" {
  description = "Name prefix for this environment."
  type        = string
}

variable "google_subjects" {
  description = "Unique ids of the Google service accounts allowed to assume the role (archive, realtime)."
  type        = list(string)
  validation {
    condition     = length(var.google_subjects) > 0
    error_message = "at least one Google service account must be trusted."
  }
}

variable "archive_bucket_arn" {
  description = "ARN of the archive bucket."
  type        = string
}

variable "branding_bucket_arn" {
  description = "ARN of the branding bucket."
  type        = string
}

data "aws_iam_policy_document" "trust" {
  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]
    principals {
      type        = "Federated"
      identifiers = ["accounts.google.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "accounts.google.com:sub"
      values   = var.google_subjects
    }
  }
}

resource "aws_iam_role" "workloads" {
  name                 = "${var.prefix}-controlroom-workloads"
  assume_role_policy   = data.aws_iam_policy_document.trust.json
  max_session_duration = 3600
}

data "aws_iam_policy_document" "access" {
  statement {
    sid       = "ArchiveObjects"
    actions   = ["s3:PutObject", "s3:GetObject", "s3:GetObjectAttributes", "s3:AbortMultipartUpload", "s3:DeleteObject"]
    resources = ["${var.archive_bucket_arn}/events/*"]
  }
  statement {
    sid       = "ArchiveList"
    actions   = ["s3:ListBucket"]
    resources = [var.archive_bucket_arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["events/*"]
    }
  }
  statement {
    sid       = "BrandingObjects"
    actions   = ["s3:PutObject", "s3:GetObject", "s3:DeleteObject"]
    resources = ["${var.branding_bucket_arn}/tenants/*"]
  }
  # the purge of a deleted company lists and removes its tenants/<id>/branding/ prefix
  statement {
    sid       = "BrandingList"
    actions   = ["s3:ListBucket"]
    resources = [var.branding_bucket_arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["tenants/*"]
    }
  }
}

resource "aws_iam_role_policy" "access" {
  name   = "s3-prefixes"
  role   = aws_iam_role.workloads.id
  policy = data.aws_iam_policy_document.access.json
}

output "role_arn" {
  description = "Role the Google workloads assume (AWS_ROLE_ARN with a Google-issued token)."
  value       = aws_iam_role.workloads.arn
}
