# What the deploy configuration reads, so no name is written twice:
#   terraform output -json edgerec_env

output "bucket" {
  value       = module.edgerec.bucket
  description = "The bundle bucket."
}

output "distribution_domain" {
  value       = module.edgerec.distribution_domain
  description = "Where clients fetch bundles and channel pointers."
}

output "table_name" {
  value       = module.edgerec.table_name
  description = "The embeddings table."
}

output "role_arns" {
  value       = module.edgerec.role_arns
  description = "Roles: deploy (the pipeline), serving (the paging API), release (release managers), ci (plan)."
}

output "spark_application_id" {
  value       = module.edgerec.spark_application_id
  description = "EMR Serverless application of the Spark jobs."
}

output "edgerec_env" {
  value       = module.edgerec.edgerec_env
  description = "The EDGEREC_* settings of the deploy stage and the paging API in this environment."
}
