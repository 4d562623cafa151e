# CI's identity on AWS, without stored keys: GitHub's OIDC provider and a deploy role that
# only the repository's workflows (for this environment) can assume. PowerUserAccess covers
# the services terraform manages here; IAM is limited to this environment's roles and policies.

variable "prefix" {
  description = "Name prefix for this environment."
  type        = string
}

variable "github_repository" {
  description = "owner/name of the GitHub repository whose workflows may deploy."
  type        = string
}

variable "github_environment" {
  description = "The environment (dev, prod): only jobs of the GitHub environments <env>-plan and <env> may assume the role."
  type        = string
}

variable "create_oidc_provider" {
  description = "Create GitHub's OIDC provider (one per AWS account: false when another environment in the account created it)."
  type        = bool
  default     = true
}

data "aws_caller_identity" "current" {}

resource "aws_iam_openid_connect_provider" "github" {
  count          = var.create_oidc_provider ? 1 : 0
  url            = "https://token.actions.githubusercontent.com"
  client_id_list = ["sts.amazonaws.com"]
}

locals {
  provider_arn = "arn:aws:iam::${data.aws_caller_identity.current.account_id}:oidc-provider/token.actions.githubusercontent.com"
}

data "aws_iam_policy_document" "trust" {
  # checkov:skip=CKV_AWS_358: the subjects are exactly repo:<github_repository>:environment:<env>[-plan] (StringEquals), which checkov cannot resolve from a variable
  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]
    principals {
      type        = "Federated"
      identifiers = [local.provider_arn]
    }
    condition {
      test     = "StringEquals"
      variable = "token.actions.githubusercontent.com:aud"
      values   = ["sts.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "token.actions.githubusercontent.com:sub"
      values = [
        "repo:${var.github_repository}:environment:${var.github_environment}-plan",
        "repo:${var.github_repository}:environment:${var.github_environment}",
      ]
    }
  }
}

resource "aws_iam_role" "deploy" {
  name                 = "${var.prefix}-controlroom-deploy"
  description          = "terraform plan and apply from ${var.github_repository} (environments ${var.github_environment}-plan and ${var.github_environment})"
  assume_role_policy   = data.aws_iam_policy_document.trust.json
  max_session_duration = 3600
  depends_on           = [aws_iam_openid_connect_provider.github]
}

resource "aws_iam_role_policy_attachment" "power_user" {
  role       = aws_iam_role.deploy.name
  policy_arn = "arn:aws:iam::aws:policy/PowerUserAccess"
}

data "aws_iam_policy_document" "iam" {
  statement {
    sid = "EnvironmentRoles"
    actions = [
      "iam:CreateRole", "iam:DeleteRole", "iam:GetRole", "iam:UpdateRole", "iam:TagRole", "iam:UntagRole",
      "iam:UpdateAssumeRolePolicy", "iam:PutRolePolicy", "iam:GetRolePolicy", "iam:DeleteRolePolicy",
      "iam:ListRolePolicies", "iam:ListAttachedRolePolicies", "iam:ListInstanceProfilesForRole", "iam:PassRole",
    ]
    resources = ["arn:aws:iam::${data.aws_caller_identity.current.account_id}:role/${var.prefix}-controlroom-*"]
  }
  statement {
    sid = "EnvironmentPolicies"
    actions = [
      "iam:CreatePolicy", "iam:DeletePolicy", "iam:GetPolicy", "iam:GetPolicyVersion", "iam:ListPolicyVersions",
      "iam:CreatePolicyVersion", "iam:DeletePolicyVersion", "iam:TagPolicy", "iam:UntagPolicy",
      "iam:AttachRolePolicy", "iam:DetachRolePolicy",
    ]
    resources = [
      "arn:aws:iam::${data.aws_caller_identity.current.account_id}:policy/${var.prefix}-controlroom-*",
      "arn:aws:iam::${data.aws_caller_identity.current.account_id}:role/${var.prefix}-controlroom-*",
    ]
  }
  statement {
    sid       = "GitHubProvider"
    actions   = ["iam:GetOpenIDConnectProvider"]
    resources = [local.provider_arn]
  }
}

resource "aws_iam_role_policy" "iam" {
  name   = "environment-roles"
  role   = aws_iam_role.deploy.id
  policy = data.aws_iam_policy_document.iam.json
}

output "deploy_role_arn" {
  description = "The role CI assumes on AWS (aws-actions/configure-aws-credentials' role-to-assume)."
  value       = aws_iam_role.deploy.arn
}
