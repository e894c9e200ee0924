# The CDN of model bundles: a private, versioned, encrypted S3 bucket behind CloudFront with origin access control.
# Layout (deploy/cdn): models/{version}/... immutable; channels/{name}.json signed pointers; locks/ release lock.

locals {
  bucket      = "${var.name}-bundles"
  logs_bucket = "${var.name}-bundle-logs"
}

resource "aws_s3_bucket" "bundles" {
  # checkov:skip=CKV_AWS_144:no cross-region replication: a lost region's bundles are exported again from the MLflow registry
  bucket = local.bucket
  tags   = var.tags
}

resource "aws_s3_bucket_versioning" "bundles" {
  bucket = aws_s3_bucket.bundles.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "bundles" {
  bucket = aws_s3_bucket.bundles.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = var.kms_key_arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_public_access_block" "bundles" {
  bucket                  = aws_s3_bucket.bundles.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "bundles" {
  bucket = aws_s3_bucket.bundles.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "bundles" {
  bucket = aws_s3_bucket.bundles.id
  rule {
    id     = "expire-noncurrent"
    status = "Enabled"
    filter {}
    noncurrent_version_expiration {
      noncurrent_days = var.noncurrent_days
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 2
    }
  }
}

resource "aws_s3_bucket_logging" "bundles" {
  bucket        = aws_s3_bucket.bundles.id
  target_bucket = aws_s3_bucket.logs.id
  target_prefix = "s3/"
}

resource "aws_s3_bucket_notification" "bundles" {
  bucket      = aws_s3_bucket.bundles.id
  eventbridge = true # channel flips and uploads become events (audit, cache warmers)
}

# Access logs of the bucket and of the distribution.
resource "aws_s3_bucket" "logs" {
  # checkov:skip=CKV_AWS_18:this is the access-log bucket itself; logging it would log the logs
  # checkov:skip=CKV_AWS_144:access logs are not replicated across regions; the bundles are rebuilt from MLflow
  # checkov:skip=CKV2_AWS_62:nothing reacts to new log objects
  bucket = local.logs_bucket
  tags   = var.tags
}

resource "aws_s3_bucket_versioning" "logs" {
  bucket = aws_s3_bucket.logs.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "logs" {
  bucket = aws_s3_bucket.logs.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = var.kms_key_arn
    }
  }
}

resource "aws_s3_bucket_public_access_block" "logs" {
  bucket                  = aws_s3_bucket.logs.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "logs" {
  # checkov:skip=CKV2_AWS_65:CloudFront standard logs are delivered with ACLs; this bucket holds access logs only
  bucket = aws_s3_bucket.logs.id
  rule {
    object_ownership = "BucketOwnerPreferred" # CloudFront standard logs are delivered with ACLs
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "logs" {
  bucket = aws_s3_bucket.logs.id
  rule {
    id     = "expire-logs"
    status = "Enabled"
    filter {}
    expiration {
      days = var.log_retention_days
    }
    noncurrent_version_expiration {
      noncurrent_days = 1
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }
}

resource "aws_cloudfront_origin_access_control" "bundles" {
  name                              = "${var.name}-bundles"
  description                       = "CloudFront reads the private bundle bucket"
  origin_access_control_origin_type = "s3"
  signing_behavior                  = "always"
  signing_protocol                  = "sigv4"
}

resource "aws_cloudfront_cache_policy" "models" {
  name        = "${var.name}-models"
  comment     = "models/*: immutable bundles"
  default_ttl = var.models_ttl_seconds
  max_ttl     = var.models_ttl_seconds
  min_ttl     = var.models_ttl_seconds
  parameters_in_cache_key_and_forwarded_to_origin {
    enable_accept_encoding_gzip   = true
    enable_accept_encoding_brotli = true
    cookies_config {
      cookie_behavior = "none"
    }
    headers_config {
      header_behavior = "none"
    }
    query_strings_config {
      query_string_behavior = "none"
    }
  }
}

resource "aws_cloudfront_cache_policy" "channels" {
  name        = "${var.name}-channels"
  comment     = "channels/*: signed pointers, flipped by release actions"
  default_ttl = var.channels_ttl_seconds
  max_ttl     = var.channels_ttl_seconds
  min_ttl     = 0
  parameters_in_cache_key_and_forwarded_to_origin {
    cookies_config {
      cookie_behavior = "none"
    }
    headers_config {
      header_behavior = "none"
    }
    query_strings_config {
      query_string_behavior = "none"
    }
  }
}

resource "aws_cloudfront_response_headers_policy" "bundles" {
  name = "${var.name}-bundles"
  security_headers_config {
    content_type_options {
      override = true
    }
    strict_transport_security {
      access_control_max_age_sec = 31536000
      include_subdomains         = true
      preload                    = true
      override                   = true
    }
  }
}

resource "aws_cloudfront_distribution" "bundles" {
  # checkov:skip=CKV_AWS_310:one origin; a bundle that cannot be fetched keeps the client on its current version
  # checkov:skip=CKV2_AWS_42:clients fetch from the distribution's own domain; no custom domain, no custom cert
  # checkov:skip=CKV_AWS_174:with the default certificate CloudFront fixes the TLS policy (TLSv1 minimum); a custom domain would set TLSv1.2_2021
  # checkov:skip=CKV_AWS_374:clients are worldwide; which devices get a model is decided by the channel rollout, not by country
  # checkov:skip=CKV2_AWS_47:the web ACL comes from the security stack (var.web_acl_arn), which holds the AWS managed rule sets incl. Known Bad Inputs (Log4j); checkov cannot see across stacks
  enabled             = true
  comment             = "EdgeRec model bundles and channel pointers"
  default_root_object = "channels/stable.json"
  price_class         = "PriceClass_100"
  web_acl_id          = var.web_acl_arn
  tags                = var.tags

  origin {
    domain_name              = aws_s3_bucket.bundles.bucket_regional_domain_name
    origin_id                = "bundles"
    origin_access_control_id = aws_cloudfront_origin_access_control.bundles.id
  }

  default_cache_behavior {
    target_origin_id           = "bundles"
    viewer_protocol_policy     = "redirect-to-https"
    allowed_methods            = ["GET", "HEAD"]
    cached_methods             = ["GET", "HEAD"]
    cache_policy_id            = aws_cloudfront_cache_policy.channels.id
    response_headers_policy_id = aws_cloudfront_response_headers_policy.bundles.id
  }

  ordered_cache_behavior {
    path_pattern               = "models/*"
    target_origin_id           = "bundles"
    viewer_protocol_policy     = "https-only"
    allowed_methods            = ["GET", "HEAD"]
    cached_methods             = ["GET", "HEAD"]
    compress                   = true
    cache_policy_id            = aws_cloudfront_cache_policy.models.id
    response_headers_policy_id = aws_cloudfront_response_headers_policy.bundles.id
  }

  ordered_cache_behavior {
    path_pattern               = "channels/*"
    target_origin_id           = "bundles"
    viewer_protocol_policy     = "https-only"
    allowed_methods            = ["GET", "HEAD"]
    cached_methods             = ["GET", "HEAD"]
    cache_policy_id            = aws_cloudfront_cache_policy.channels.id
    response_headers_policy_id = aws_cloudfront_response_headers_policy.bundles.id
  }

  logging_config {
    bucket          = aws_s3_bucket.logs.bucket_domain_name
    prefix          = "cloudfront/"
    include_cookies = false
  }

  restrictions {
    geo_restriction {
      restriction_type = "none"
    }
  }

  viewer_certificate {
    cloudfront_default_certificate = true
  }
}

# Only the distribution reads the bucket; writers come through IAM roles (modules/iam).
data "aws_iam_policy_document" "bundles" {
  statement {
    sid       = "CloudFrontReads"
    actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.bundles.arn}/models/*", "${aws_s3_bucket.bundles.arn}/channels/*"]
    principals {
      type        = "Service"
      identifiers = ["cloudfront.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "AWS:SourceArn"
      values   = [aws_cloudfront_distribution.bundles.arn]
    }
  }
  statement {
    sid       = "TLSOnly"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.bundles.arn, "${aws_s3_bucket.bundles.arn}/*"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "bundles" {
  bucket = aws_s3_bucket.bundles.id
  policy = data.aws_iam_policy_document.bundles.json
}
