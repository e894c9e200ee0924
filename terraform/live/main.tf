# The one root of every environment: the stack with one environment's values (envs/<environment>.tfvars) and its
# state (envs/<environment>.backend.hcl). terraform/README.md shows the commands.

provider "aws" {
  region = var.region
  default_tags {
    tags = { project = "edgerec", environment = var.environment }
  }
}

module "edgerec" {
  source                     = "../modules/stack"
  redis_enabled              = var.redis_enabled
  name                       = var.name
  web_acl_arn                = var.web_acl_arn
  vpc_id                     = var.vpc_id
  private_subnet_ids         = var.private_subnet_ids
  spark_security_group_ids   = var.spark_security_group_ids
  client_cidr_blocks         = var.client_cidr_blocks
  redis_auth_token           = var.redis_auth_token
  warehouse_bucket_arn       = var.warehouse_bucket_arn
  state_bucket_arn           = var.state_bucket_arn
  airflow_execution_role_arn = var.airflow_execution_role_arn
  mlflow_tracking_uri        = var.mlflow_tracking_uri
  serving_principals         = var.serving_principals
  release_principals         = var.release_principals
  ci_principals              = var.ci_principals
}
