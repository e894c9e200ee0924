variable "name" {
  type        = string
  description = "Prefix of every resource name, e.g. edgerec-prod."
}

variable "bucket_arn" {
  type        = string
  description = "ARN of the bundle bucket (modules/cdn)."
}

variable "distribution_arn" {
  type        = string
  description = "ARN of the CloudFront distribution; release managers may invalidate channels/*."
}

variable "table_arn" {
  type        = string
  description = "ARN of the embeddings table (modules/kv)."
}

variable "kms_key_arn" {
  type        = string
  description = "KMS key of the bucket and the table."
}

variable "deploy_principals" {
  type        = list(string)
  description = "ARNs allowed to assume the deploy role: the pipeline's Airflow execution role."
}

variable "serving_principals" {
  type        = list(string)
  description = "ARNs allowed to assume the paging API's role (its task or instance role)."
}

variable "release_principals" {
  type        = list(string)
  description = "ARNs allowed to assume the release managers' role (their SSO role, with MFA)."
}

variable "ci_principals" {
  type        = list(string)
  description = "ARNs allowed to assume the CI role (the CI's OIDC role)."
}

variable "state_bucket_arn" {
  type        = string
  description = "ARN of the S3 bucket holding the Terraform state; the CI role reads it and writes its lock file."
}

variable "tags" {
  type        = map(string)
  default     = {}
  description = "Tags added to every resource."
}
