output "bucket" {
  value       = aws_s3_bucket.bundles.bucket
  description = "Name of the bundle bucket (EDGEREC_CDN_URL is s3://<bucket>)."
}

output "bucket_arn" {
  value       = aws_s3_bucket.bundles.arn
  description = "ARN of the bundle bucket, for IAM policies."
}

output "distribution_domain" {
  value       = aws_cloudfront_distribution.bundles.domain_name
  description = "Domain clients fetch bundles and channel pointers from."
}

output "distribution_arn" {
  value       = aws_cloudfront_distribution.bundles.arn
  description = "ARN of the CloudFront distribution (release roles may invalidate channels/*)."
}
