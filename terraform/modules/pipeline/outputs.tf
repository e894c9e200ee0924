output "spark_application_id" {
  value       = aws_emrserverless_application.spark.id
  description = "EMR Serverless application the DAG's Spark task submits spark_jobs/main.py to."
}

output "spark_job_role_arn" {
  value       = aws_iam_role.spark.arn
  description = "Execution role of the Spark job runs."
}

output "mlflow_tracking_uri" {
  value       = var.mlflow_tracking_uri
  description = "The MLflow server the training tasks log to (EDGEREC_MLFLOW_TRACKING_URI)."
}
