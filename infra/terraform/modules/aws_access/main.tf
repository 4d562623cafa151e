# AWS access for the Google workloads without long-lived keys: one role per deployable,
# trusted through web identity federation with Google for exactly that deployable's service
# account, each limited to what its code does.
#
# - archive: writes and reads the archive (events/), and the company purge deletes a company's
#   archive and branding prefixes;
# - realtime: presigns logo uploads and reads logos (tenants/*/branding/*), nothing else in S3;
# - persist, subscriptions, pulse, notify: no S3 at all.
# With `database_iam_auth`, every role of a deployable that uses the database may also sign in
# to the RDS Proxy as the runtime role (rds-db:connect on `database_connect_arn`).
#
# A Google service account's ID token carries an azp claim (the account's numeric id). When
# azp is present AWS maps `accounts.google.com:aud` to azp and `accounts.google.com:oaud` to the
# token's aud (the audience the workload asked the metadata server for). The trust policies
# check all three: azp and sub (that one service account) and oaud (the fixed audience).

variable "prefix" {
  description = "Name prefix for this environment."
  type        = string
}

variable "audience" {
  description = "The audience the workloads request their Google ID token for (AWS_WEB_IDENTITY_AUDIENCE)."
  type        = string
  default     = "controlroom-aws"
}

variable "google_subjects" {
  description = "Deployable => numeric unique id of its Google service account (archive, realtime, persist, subscriptions)."
  type        = map(string)
  validation {
    condition     = contains(keys(var.google_subjects), "archive") && contains(keys(var.google_subjects), "realtime")
    error_message = "google_subjects needs at least archive and realtime."
  }
}

variable "archive_bucket_arn" {
  description = "ARN of the archive bucket."
  type        = string
}

variable "archive_prefixes" {
  description = "Key prefixes of the archive's objects (the archive role reads, writes and purges only these)."
  type        = list(string)
  default     = ["events/"]
}

variable "branding_bucket_arn" {
  description = "ARN of the branding bucket."
  type        = string
}

variable "database_iam_auth" {
  description = "Whether the deployables sign in to the RDS Proxy with IAM tokens (Aurora); false for Cloud SQL."
  type        = bool
  default     = true
}

variable "database_connect_arn" {
  description = "rds-db:connect resource of the runtime role through the proxy (ignored without database_iam_auth)."
  type        = string
  default     = null
}

locals {
  database_users = ["archive", "realtime", "persist", "subscriptions", "pulse", "notify"]
  # a role per deployable that needs AWS: S3 users always, database users with IAM auth
  roles = {
    for name, subject in var.google_subjects : name => subject
    if contains(["archive", "realtime"], name) || (var.database_iam_auth && contains(local.database_users, name))
  }
}

data "aws_iam_policy_document" "trust" {
  for_each = local.roles
  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]
    principals {
      type        = "Federated"
      identifiers = ["accounts.google.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "accounts.google.com:oaud"
      values   = [var.audience]
    }
    condition {
      test     = "StringEquals"
      variable = "accounts.google.com:aud"
      values   = [each.value]
    }
    condition {
      test     = "StringEquals"
      variable = "accounts.google.com:sub"
      values   = [each.value]
    }
  }
}

resource "aws_iam_role" "deployable" {
  for_each             = local.roles
  name                 = "${var.prefix}-controlroom-${each.key}"
  description          = "Assumed by the ${each.key} deployable's Google service account"
  assume_role_policy   = data.aws_iam_policy_document.trust[each.key].json
  max_session_duration = 3600
}

data "aws_iam_policy_document" "archive" {
  statement {
    sid       = "ArchiveObjects"
    actions   = ["s3:PutObject", "s3:GetObject", "s3:GetObjectAttributes", "s3:AbortMultipartUpload", "s3:DeleteObject"]
    resources = [for p in var.archive_prefixes : "${var.archive_bucket_arn}/${p}*"]
  }
  statement {
    sid       = "ArchiveList"
    actions   = ["s3:ListBucket"]
    resources = [var.archive_bucket_arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = [for p in var.archive_prefixes : "${p}*"]
    }
  }
  # the purge of a deleted company lists and removes its tenants/<id>/branding/ prefix
  statement {
    sid       = "BrandingPurge"
    actions   = ["s3:DeleteObject"]
    resources = ["${var.branding_bucket_arn}/tenants/*/branding/*"]
  }
  statement {
    sid       = "BrandingList"
    actions   = ["s3:ListBucket"]
    resources = [var.branding_bucket_arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["tenants/*/branding/*"]
    }
  }
}

data "aws_iam_policy_document" "realtime" {
  # presigned uploads are signed with these credentials, so PutObject is the upload's grant
  statement {
    sid       = "BrandingObjects"
    actions   = ["s3:PutObject", "s3:GetObject"]
    resources = ["${var.branding_bucket_arn}/tenants/*/branding/*"]
  }
}

resource "aws_iam_role_policy" "archive" {
  name   = "s3-archive-and-purge"
  role   = aws_iam_role.deployable["archive"].id
  policy = data.aws_iam_policy_document.archive.json
}

resource "aws_iam_role_policy" "realtime" {
  name   = "s3-branding"
  role   = aws_iam_role.deployable["realtime"].id
  policy = data.aws_iam_policy_document.realtime.json
}

data "aws_iam_policy_document" "database" {
  count = var.database_iam_auth ? 1 : 0
  statement {
    sid       = "ProxySignIn"
    actions   = ["rds-db:connect"]
    resources = [var.database_connect_arn]
  }
}

resource "aws_iam_role_policy" "database" {
  for_each = var.database_iam_auth ? toset([for name in local.database_users : name if contains(keys(local.roles), name)]) : toset([])
  name     = "rds-proxy-connect"
  role     = aws_iam_role.deployable[each.key].id
  policy   = data.aws_iam_policy_document.database[0].json
}

output "role_arns" {
  description = "Deployable => the role its Google service account assumes (AWS_ROLE_ARN)."
  value       = { for name, role in aws_iam_role.deployable : name => role.arn }
}

output "audience" {
  description = "The audience of the Google ID tokens the roles accept (AWS_WEB_IDENTITY_AUDIENCE)."
  value       = var.audience
}
