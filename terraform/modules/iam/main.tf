# Least-privilege roles around the deploy protocol (deploy/): who may write what.
#   deploy   the pipeline: writes models/ and the table (never channels/)
#   serving  the paging API: reads the table and the channel pointers
#   release  release managers: write channels/ and the release lock only; read what verify reads
#   ci       terraform plan only: read-only, plus the state bucket

locals {
  models   = "${var.bucket_arn}/models/*"
  channels = "${var.bucket_arn}/channels/*"
  locks    = "${var.bucket_arn}/locks/*"
}

data "aws_iam_policy_document" "assume" {
  for_each = {
    deploy  = var.deploy_principals
    serving = var.serving_principals
    release = var.release_principals
    ci      = var.ci_principals
  }
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "AWS"
      identifiers = each.value
    }
  }
}

resource "aws_iam_role" "role" {
  for_each             = data.aws_iam_policy_document.assume
  name                 = "${var.name}-${each.key}"
  assume_role_policy   = each.value.json
  max_session_duration = 3600
  tags                 = var.tags
}

data "aws_iam_policy_document" "deploy" {
  statement {
    sid       = "WriteBundles"
    actions   = ["s3:PutObject", "s3:GetObject", "s3:AbortMultipartUpload"]
    resources = [local.models]
  }
  statement {
    sid       = "ReadPointersAndLock"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
    resources = [local.locks]
  }
  statement {
    sid       = "ReadChannels"
    actions   = ["s3:GetObject"]
    resources = [local.channels]
  }
  statement {
    sid       = "ListBundles"
    actions   = ["s3:ListBucket"]
    resources = [var.bucket_arn]
  }
  statement {
    sid = "WriteEmbeddings"
    actions = ["dynamodb:BatchWriteItem", "dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:BatchGetItem",
    "dynamodb:Query", "dynamodb:DeleteItem", "dynamodb:DescribeTable"]
    resources = [var.table_arn]
  }
  statement {
    sid       = "Encrypt"
    actions   = ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey"]
    resources = [var.kms_key_arn]
  }
}

data "aws_iam_policy_document" "serving" {
  statement {
    sid       = "ReadEmbeddings"
    actions   = ["dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query", "dynamodb:DescribeTable"]
    resources = [var.table_arn]
  }
  statement {
    sid       = "ReadManifestsAndChannels"
    actions   = ["s3:GetObject"]
    resources = [local.models, local.channels]
  }
  statement {
    sid       = "Decrypt"
    actions   = ["kms:Decrypt"]
    resources = [var.kms_key_arn]
  }
}

data "aws_iam_policy_document" "release" {
  statement {
    sid       = "MoveChannels"
    actions   = ["s3:GetObject", "s3:PutObject"]
    resources = [local.channels]
  }
  statement {
    sid       = "HoldTheReleaseLock"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
    resources = [local.locks]
  }
  statement {
    sid       = "VerifyBundles"
    actions   = ["s3:GetObject"]
    resources = [local.models]
  }
  statement {
    sid       = "ListBundles"
    actions   = ["s3:ListBucket"]
    resources = [var.bucket_arn]
  }
  statement {
    sid       = "VerifyEmbeddings"
    actions   = ["dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query", "dynamodb:DescribeTable"]
    resources = [var.table_arn]
  }
  statement {
    sid       = "InvalidateChannels"
    actions   = ["cloudfront:CreateInvalidation"]
    resources = [var.distribution_arn]
  }
  statement {
    sid       = "Keys"
    actions   = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"]
    resources = [var.kms_key_arn]
  }
}

data "aws_iam_policy_document" "ci" {
  statement {
    sid = "ReadInfrastructure"
    actions = ["s3:GetBucket*", "s3:GetEncryptionConfiguration", "s3:GetLifecycleConfiguration",
      "s3:GetReplicationConfiguration", "cloudfront:Get*", "cloudfront:List*", "dynamodb:Describe*",
      "dynamodb:ListTagsOfResource", "elasticache:Describe*", "elasticache:ListTagsForResource", "iam:Get*",
    "iam:List*", "kms:DescribeKey", "kms:GetKeyPolicy", "emr-serverless:GetApplication", "emr-serverless:ListTagsForResource"]
    resources = [var.bucket_arn, var.distribution_arn, var.table_arn, var.kms_key_arn,
    "arn:aws:iam::*:role/${var.name}-*", "arn:aws:elasticache:*:*:replicationgroup:${var.name}-*",
    "arn:aws:emr-serverless:*:*:/applications/*"]
  }
  statement {
    sid       = "ReadState"
    actions   = ["s3:GetObject", "s3:ListBucket"]
    resources = [var.state_bucket_arn, "${var.state_bucket_arn}/*"]
  }
  statement {
    sid       = "StateLock"
    actions   = ["s3:PutObject", "s3:DeleteObject"]
    resources = ["${var.state_bucket_arn}/*.tflock"]
  }
}

locals {
  policies = {
    deploy  = data.aws_iam_policy_document.deploy.json
    serving = data.aws_iam_policy_document.serving.json
    release = data.aws_iam_policy_document.release.json
    ci      = data.aws_iam_policy_document.ci.json
  }
}

resource "aws_iam_role_policy" "policy" {
  for_each = local.policies
  name     = "${var.name}-${each.key}"
  role     = aws_iam_role.role[each.key].id
  policy   = each.value
}
