output "table_name" {
  value       = aws_dynamodb_table.embeddings.name
  description = "DynamoDB table of the embedding rows (EDGEREC_KV_URL is dynamodb://<table>)."
}

output "table_arn" {
  value       = aws_dynamodb_table.embeddings.arn
  description = "ARN of the embeddings table, for IAM policies."
}

output "redis_endpoint" {
  value       = var.redis_enabled ? aws_elasticache_replication_group.redis[0].primary_endpoint_address : null
  description = "Primary endpoint of the Redis replication group, when enabled (EDGEREC_KV_URL is rediss://<endpoint>:6379/0)."
}
