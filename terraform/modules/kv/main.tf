# The key-value store of embedding rows (deploy/kv): DynamoDB always, ElastiCache Redis when selected.
# Table keys as deploy/kv/dynamodb.py writes them: pk = "{version}#{table}" or "index", sk = row id (10 digits)
# or the version.

resource "aws_dynamodb_table" "embeddings" {
  name         = "${var.name}-embeddings"
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "pk"
  range_key    = "sk"

  attribute {
    name = "pk"
    type = "S"
  }

  attribute {
    name = "sk"
    type = "S"
  }

  ttl {
    attribute_name = "expires_at"
    enabled        = true
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = var.kms_key_arn
  }

  deletion_protection_enabled = true
  tags                        = var.tags
}

resource "aws_elasticache_subnet_group" "redis" {
  count      = var.redis_enabled ? 1 : 0
  name       = "${var.name}-redis"
  subnet_ids = var.subnet_ids
  tags       = var.tags
}

resource "aws_security_group" "redis" {
  count       = var.redis_enabled ? 1 : 0
  name        = "${var.name}-redis"
  description = "Redis of the EdgeRec embeddings: deploy jobs and the paging API only"
  vpc_id      = var.vpc_id
  tags        = var.tags

  ingress {
    description = "Redis from the deploy jobs and the paging API"
    from_port   = 6379
    to_port     = 6379
    protocol    = "tcp"
    cidr_blocks = var.client_cidr_blocks
  }
  # no egress rule: Redis only answers on connections clients open (security groups are stateful)
}

resource "aws_elasticache_replication_group" "redis" {
  count                      = var.redis_enabled ? 1 : 0
  replication_group_id       = "${var.name}-embeddings"
  description                = "EdgeRec embedding rows, one hash per block of rows"
  engine                     = "redis"
  engine_version             = "7.1"
  node_type                  = var.redis_node_type
  num_cache_clusters         = 1 + var.redis_replicas
  automatic_failover_enabled = true
  multi_az_enabled           = true
  port                       = 6379
  subnet_group_name          = aws_elasticache_subnet_group.redis[0].name
  security_group_ids         = [aws_security_group.redis[0].id]
  at_rest_encryption_enabled = true
  kms_key_id                 = var.kms_key_arn
  transit_encryption_enabled = true
  auth_token                 = var.redis_auth_token
  auto_minor_version_upgrade = true
  snapshot_retention_limit   = 3
  tags                       = var.tags
}
