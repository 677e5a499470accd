output "data_bucket" {
  description = "Bucket with the dataset, test split and score."
  value       = aws_s3_bucket.data.id
}

output "models_bucket" {
  description = "Bucket with the trained models."
  value       = aws_s3_bucket.models.id
}

output "dataset_key" {
  description = "Key of the dataset in the data bucket."
  value       = aws_s3_object.dataset.key
}

output "ingestion_function_name" {
  description = "Name of the ingestion function."
  value       = aws_lambda_function.this["ingestion"].function_name
}

output "ingestion_function_arn" {
  description = "ARN of the ingestion function."
  value       = aws_lambda_function.this["ingestion"].arn
}

output "inference_function_name" {
  description = "Name of the inference function."
  value       = aws_lambda_function.this["inference"].function_name
}

output "inference_function_arn" {
  description = "ARN of the inference function."
  value       = aws_lambda_function.this["inference"].arn
}

output "lambda_role_arn" {
  description = "Execution role of both functions."
  value       = aws_iam_role.lambda.arn
}

output "package_type" {
  description = "Zip or Image."
  value       = var.package_type
}

output "retrain_on_upload" {
  description = "Whether an upload of a dataset version to the data bucket starts a run."
  value       = length(aws_s3_bucket_notification.retrain_on_upload) > 0
}
