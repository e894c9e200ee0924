# The whole cloud side of one environment: the KMS key, the CDN, the key-value store, the IAM roles and the
# batch compute. The root (live/) calls it with one environment's values (live/envs/<environment>.tfvars).

data "aws_caller_identity" "current" {}

data "aws_region" "current" {}

data "aws_iam_policy_document" "key" {
  # checkov:skip=CKV_AWS_109:a key policy's "*" resource is this key; the account administers it, as AWS's default key policy does
  # checkov:skip=CKV_AWS_111:as above: the resource of a key policy is the key itself
  # checkov:skip=CKV_AWS_356:as above: the resource of a key policy is the key itself
  statement {
    sid       = "AccountAdministers"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:aws:iam::${data.aws_caller_identity.current.account_id}:root"]
    }
  }
  statement {
    sid       = "CloudFrontDecrypts"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey*"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["cloudfront.amazonaws.com", "delivery.logs.amazonaws.com"]
    }
  }
}

resource "aws_kms_key" "edgerec" {
  description         = "${var.name}: bundles, embeddings, logs"
  enable_key_rotation = true
  policy              = data.aws_iam_policy_document.key.json
}

module "cdn" {
  source      = "../cdn"
  name        = var.name
  kms_key_arn = aws_kms_key.edgerec.arn
  web_acl_arn = var.web_acl_arn
}

module "kv" {
  source             = "../kv"
  name               = var.name
  kms_key_arn        = aws_kms_key.edgerec.arn
  redis_enabled      = var.redis_enabled
  vpc_id             = var.vpc_id
  subnet_ids         = var.private_subnet_ids
  client_cidr_blocks = var.client_cidr_blocks
  redis_auth_token   = var.redis_auth_token
}

module "iam" {
  source             = "../iam"
  name               = var.name
  bucket_arn         = module.cdn.bucket_arn
  distribution_arn   = module.cdn.distribution_arn
  table_arn          = module.kv.table_arn
  kms_key_arn        = aws_kms_key.edgerec.arn
  deploy_principals  = [var.airflow_execution_role_arn]
  serving_principals = var.serving_principals
  release_principals = var.release_principals
  ci_principals      = var.ci_principals
  state_bucket_arn   = var.state_bucket_arn
}

module "pipeline" {
  source                     = "../pipeline"
  name                       = var.name
  warehouse_bucket_arn       = var.warehouse_bucket_arn
  kms_key_arn                = aws_kms_key.edgerec.arn
  airflow_execution_role_arn = var.airflow_execution_role_arn
  mlflow_tracking_uri        = var.mlflow_tracking_uri
  subnet_ids                 = var.private_subnet_ids
  security_group_ids         = var.spark_security_group_ids
}
