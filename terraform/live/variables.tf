variable "environment" {
  type        = string
  description = "Name of the environment (dev, prod): a tag on every resource."
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]*$", var.environment))
    error_message = "environment: lower-case letters, digits and dashes."
  }
}

variable "redis_enabled" {
  type        = bool
  default     = false
  description = "Embeddings in ElastiCache Redis as well as DynamoDB (prod: true)."
}

variable "region" {
  type        = string
  default     = "us-east-1"
  description = "AWS region of the environment."
}

variable "name" {
  type        = string
  description = "Prefix of every resource name (globally unique for the buckets)."
}

variable "web_acl_arn" {
  type        = string
  description = "WAFv2 web ACL (scope CLOUDFRONT) from the security stack."
}

variable "vpc_id" {
  type        = string
  description = "VPC of Redis and the Spark workers."
}

variable "private_subnet_ids" {
  type        = list(string)
  description = "Private subnets of Redis and the Spark workers."
}

variable "spark_security_group_ids" {
  type        = list(string)
  description = "Security groups of the Spark workers."
}

variable "client_cidr_blocks" {
  type        = list(string)
  description = "Networks of the deploy jobs and the paging API (Redis ingress)."
}

variable "redis_auth_token" {
  type        = string
  default     = null
  sensitive   = true
  description = "AUTH token of Redis, from the secret store (TF_VAR_redis_auth_token)."
}

variable "warehouse_bucket_arn" {
  type        = string
  description = "The data lake bucket (raw zone and warehouse)."
}

variable "state_bucket_arn" {
  type        = string
  description = "The Terraform state bucket (the CI role reads it)."
}

variable "airflow_execution_role_arn" {
  type        = string
  description = "Execution role of the managed Airflow environment (it assumes the deploy role)."
}

variable "mlflow_tracking_uri" {
  type        = string
  description = "The MLflow server (PostgreSQL + S3) of the environment."
}

variable "serving_principals" {
  type        = list(string)
  description = "Roles of the paging API's tasks."
}

variable "release_principals" {
  type        = list(string)
  description = "SSO roles of the release managers."
}

variable "ci_principals" {
  type        = list(string)
  description = "The CI's OIDC role."
}
