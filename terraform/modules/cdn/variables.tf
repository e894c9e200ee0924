variable "name" {
  type        = string
  description = "Prefix of every resource name, e.g. edgerec-prod."
}

variable "kms_key_arn" {
  type        = string
  description = "KMS key that encrypts the bundle bucket and its access logs."
}

variable "models_ttl_seconds" {
  type        = number
  default     = 31536000
  description = "CloudFront TTL of models/* (bundles are immutable: a year)."
}

variable "channels_ttl_seconds" {
  type        = number
  default     = 60
  description = "CloudFront TTL of channels/* (the mutable, signed channel pointers)."
}

variable "noncurrent_days" {
  type        = number
  default     = 30
  description = "Days a non-current object version is kept (versioning protects against overwrites and deletes)."
}

variable "log_retention_days" {
  type        = number
  default     = 90
  description = "Days access logs of the bucket and the distribution are kept."
}

variable "web_acl_arn" {
  type        = string
  description = "WAFv2 web ACL (scope CLOUDFRONT) attached to the distribution."
}

variable "tags" {
  type        = map(string)
  default     = {}
  description = "Tags added to every resource."
}
