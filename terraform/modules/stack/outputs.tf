output "bucket" {
  value       = module.cdn.bucket
  description = "The bundle bucket."
}

output "distribution_domain" {
  value       = module.cdn.distribution_domain
  description = "Where clients fetch bundles and channel pointers."
}

output "table_name" {
  value       = module.kv.table_name
  description = "The embeddings table."
}

output "role_arns" {
  value       = module.iam.role_arns
  description = "Roles: deploy (the pipeline), serving (the paging API), release (release managers), ci (plan)."
}

output "spark_application_id" {
  value       = module.pipeline.spark_application_id
  description = "EMR Serverless application of the Spark jobs."
}

output "edgerec_env" {
  value = {
    EDGEREC_CDN_URL             = "s3://${module.cdn.bucket}?region=${data.aws_region.current.name}"
    EDGEREC_KV_URL              = var.redis_enabled ? "rediss://${module.kv.redis_endpoint}:6379/0" : "dynamodb://${module.kv.table_name}?region=${data.aws_region.current.name}"
    EDGEREC_MLFLOW_TRACKING_URI = module.pipeline.mlflow_tracking_uri
  }
  description = "The EDGEREC_* settings of the deploy stage and the paging API in this environment."
}
