variable "name" {
  type        = string
  description = "Prefix of every resource name, e.g. edgerec-prod."
}

variable "emr_release_label" {
  type        = string
  default     = "emr-7.9.0"
  description = "EMR Serverless release that runs the Spark jobs (Spark 3.5+; spark_jobs/main.py is the entry point)."
}

variable "spark_max_vcpu" {
  type        = string
  default     = "64 vCPU"
  description = "Most vCPU the Spark application may hold at once."
}

variable "spark_max_memory" {
  type        = string
  default     = "256 GB"
  description = "Most memory the Spark application may hold at once."
}

variable "warehouse_bucket_arn" {
  type        = string
  description = "The data lake bucket holding EDGEREC_HOME's raw zone and warehouse (a shared mount for Spark)."
}

variable "kms_key_arn" {
  type        = string
  description = "KMS key of the data lake bucket."
}

variable "airflow_execution_role_arn" {
  type        = string
  description = "Execution role of the managed Airflow (MWAA) environment that runs the DAGs; it starts Spark job runs and assumes the deploy role."
}

variable "mlflow_tracking_uri" {
  type        = string
  description = "The MLflow server (backed by PostgreSQL, artifacts on S3) the training tasks log to; EDGEREC_MLFLOW_TRACKING_URI."
}

variable "subnet_ids" {
  type        = list(string)
  description = "Private subnets the Spark workers run in."
}

variable "security_group_ids" {
  type        = list(string)
  description = "Security groups of the Spark workers."
}

variable "tags" {
  type        = map(string)
  default     = {}
  description = "Tags added to every resource."
}
