terraform {
  required_version = ">= 1.6"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.40, < 7.0"
    }
  }
  # Remote state: S3 with a lock file. Values per environment in envs/<environment>.backend.hcl
  # (terraform/README.md): terraform init -reconfigure -backend-config=envs/prod.backend.hcl
  backend "s3" {}
}
