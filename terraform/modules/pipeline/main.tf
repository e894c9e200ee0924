# The batch side at scale: the Spark jobs on EMR Serverless, started by the managed Airflow's DAG tasks.
# Managed Airflow (MWAA) and the MLflow server (PostgreSQL + S3) are run by the platform team; they come in as
# variables (their execution role and tracking URI), and this module grants what the pipeline needs of them.

resource "aws_emrserverless_application" "spark" {
  name          = "${var.name}-spark"
  release_label = var.emr_release_label
  type          = "spark"
  tags          = var.tags

  maximum_capacity {
    cpu    = var.spark_max_vcpu
    memory = var.spark_max_memory
  }

  auto_start_configuration {
    enabled = true
  }

  auto_stop_configuration {
    enabled              = true
    idle_timeout_minutes = 15
  }

  network_configuration {
    subnet_ids         = var.subnet_ids
    security_group_ids = var.security_group_ids
  }
}

# What a Spark job run may touch: the data lake (raw zone in, warehouse out).
data "aws_iam_policy_document" "spark_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["emr-serverless.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "spark" {
  name               = "${var.name}-spark-jobs"
  assume_role_policy = data.aws_iam_policy_document.spark_assume.json
  tags               = var.tags
}

data "aws_iam_policy_document" "spark" {
  statement {
    sid       = "DataLake"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
    resources = [for prefix in ["raw", "warehouse", "reports"] : "${var.warehouse_bucket_arn}/${prefix}/*"]
  }
  statement {
    sid       = "ListDataLake"
    actions   = ["s3:ListBucket"]
    resources = [var.warehouse_bucket_arn]
  }
  statement {
    sid       = "Keys"
    actions   = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"]
    resources = [var.kms_key_arn]
  }
}

resource "aws_iam_role_policy" "spark" {
  name   = "${var.name}-spark-jobs"
  role   = aws_iam_role.spark.id
  policy = data.aws_iam_policy_document.spark.json
}

# The Airflow execution role starts and watches job runs, and passes the job role.
data "aws_iam_policy_document" "airflow_runs_spark" {
  statement {
    sid       = "RunSparkJobs"
    actions   = ["emr-serverless:StartJobRun", "emr-serverless:GetJobRun", "emr-serverless:CancelJobRun"]
    resources = [aws_emrserverless_application.spark.arn, "${aws_emrserverless_application.spark.arn}/jobruns/*"]
  }
  statement {
    sid       = "PassJobRole"
    actions   = ["iam:PassRole"]
    resources = [aws_iam_role.spark.arn]
  }
}

resource "aws_iam_role_policy" "airflow_runs_spark" {
  name   = "${var.name}-airflow-runs-spark"
  role   = reverse(split("/", var.airflow_execution_role_arn))[0] # the role's name, from its ARN
  policy = data.aws_iam_policy_document.airflow_runs_spark.json
}
