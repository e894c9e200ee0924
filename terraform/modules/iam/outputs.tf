output "role_arns" {
  value       = { for k, r in aws_iam_role.role : k => r.arn }
  description = "ARN of each role: deploy, serving, release, ci."
}
