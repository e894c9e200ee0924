variable "name" {
  type        = string
  description = "Prefix of every resource name, e.g. edgerec-prod."
}

variable "kms_key_arn" {
  type        = string
  description = "KMS key that encrypts the table (and Redis at rest)."
}

variable "redis_enabled" {
  type        = bool
  default     = false
  description = "Also create an ElastiCache Redis replication group (EDGEREC_KV_URL=rediss://...)."
}

variable "redis_node_type" {
  type        = string
  default     = "cache.r7g.large"
  description = "ElastiCache node type; the paper's brand table (1.5M x 40 fp16) is about 0.3 GB with keys."
}

variable "redis_replicas" {
  type        = number
  default     = 1
  description = "Read replicas of the primary (automatic failover across zones needs at least one)."
  validation {
    condition     = var.redis_replicas >= 1
    error_message = "redis_replicas must be at least 1: the group fails over across availability zones."
  }
}

variable "subnet_ids" {
  type        = list(string)
  default     = []
  description = "Private subnets of the Redis replication group."
}

variable "vpc_id" {
  type        = string
  default     = ""
  description = "VPC of the Redis replication group."
}

variable "client_cidr_blocks" {
  type        = list(string)
  default     = []
  description = "Networks of the deploy jobs and the paging API, allowed to reach Redis on 6379."
}

variable "redis_auth_token" {
  type        = string
  default     = null
  sensitive   = true
  description = "AUTH token of the Redis replication group (from a secret store)."
}

variable "tags" {
  type        = map(string)
  default     = {}
  description = "Tags added to every resource."
}
