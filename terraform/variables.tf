# ---------------------------------------------------------------- target ---------------

variable "region" {
  description = "AWS region to deploy to."
  type        = string
  default     = "us-east-1"
}

variable "endpoint_url" {
  description = "Single endpoint for every AWS service (LocalStack: http://localhost:4566). Null for real AWS."
  type        = string
  default     = null
}

variable "access_key" {
  description = "Static access key; only for emulators (LocalStack accepts `test`). Null: the standard AWS credential chain."
  type        = string
  default     = null
  sensitive   = true
}

variable "secret_key" {
  description = "Static secret key; only for emulators. Null: the standard AWS credential chain."
  type        = string
  default     = null
  sensitive   = true
}

variable "tags" {
  description = "Tags applied to every resource."
  type        = map(string)
  default     = { Project = "local-ml-flow" }
}

# ---------------------------------------------------------------- names ----------------

variable "data_bucket" {
  description = "Bucket holding the dataset, the test split and the score (must be globally unique on real AWS)."
  type        = string
  default     = "local-ml-flow-data"
}

variable "models_bucket" {
  description = "Bucket holding the trained models (must be globally unique on real AWS)."
  type        = string
  default     = "local-ml-flow-models"
}

variable "artifacts_bucket" {
  description = "Bucket the Lambda zip is uploaded to (Zip packaging only; the zip is over the 50 MB direct-upload limit)."
  type        = string
  default     = "local-ml-flow-artifacts"
}

variable "dataset_key" {
  description = "Key of the dataset object in the data bucket."
  type        = string
  default     = "housing.csv"
}

variable "ingestion_function_name" {
  description = "Name of the ingestion (training) function."
  type        = string
  default     = "local-ml-flow-ingestion"
}

variable "inference_function_name" {
  description = "Name of the inference (evaluation) function."
  type        = string
  default     = "local-ml-flow-inference"
}

variable "force_destroy" {
  description = "Let `terraform destroy` delete non-empty buckets (true for LocalStack; keep false on real AWS)."
  type        = bool
  default     = false
}

# ---------------------------------------------------------------- inputs ---------------

variable "dataset_path" {
  description = "Local path of housing.csv to upload as the initial dataset (relative paths are relative to this directory)."
  type        = string
  default     = "../.cache/housing.csv"

  validation {
    condition     = fileexists(var.dataset_path)
    error_message = "The dataset_path file does not exist: fetch housing.csv first (see docs/infrastructure.md) or pass -var dataset_path=PATH."
  }
}

variable "package_type" {
  description = "How the functions are packaged: Zip (default; free LocalStack runs it) or Image (ECR image; real AWS or LocalStack Pro)."
  type        = string
  default     = "Zip"

  validation {
    condition     = contains(["Zip", "Image"], var.package_type)
    error_message = "The package_type must be \"Zip\" or \"Image\"."
  }
}

variable "lambda_zip_path" {
  description = "Zip built by bin/build_lambdas.sh (package_type = Zip)."
  type        = string
  default     = "../lambdas/dist/local-ml-flow-lambda.zip"
}

variable "image_uri" {
  description = "Image built from lambdas/Dockerfile and pushed to ECR (package_type = Image), e.g. ACCOUNT.dkr.ecr.REGION.amazonaws.com/local-ml-flow:TAG."
  type        = string
  default     = null
}

# ---------------------------------------------------------------- functions ------------

variable "lambda_timeout" {
  description = "Function timeout in seconds (the Lambda default of 3 s is far too short for training)."
  type        = number
  default     = 300

  validation {
    condition     = var.lambda_timeout >= 300 && var.lambda_timeout <= 900
    error_message = "The lambda_timeout must be between 300 and 900 seconds."
  }
}

variable "lambda_memory_size" {
  description = "Function memory in MB (CPU share grows with it)."
  type        = number
  default     = 1024

  validation {
    condition     = var.lambda_memory_size >= 512 && var.lambda_memory_size <= 10240
    error_message = "The lambda_memory_size must be between 512 and 10240 MB."
  }
}

variable "log_retention_days" {
  description = "Retention of the functions' CloudWatch log groups."
  type        = number
  default     = 14
}

# ---------------------------------------------------------------- retraining -----------

variable "retrain_on_upload" {
  description = "Retrain when data lands: an upload of the dataset key or of a registered dataset's version (datasets/<name>/versions/<sha256>.csv) invokes the ingestion function, which trains, scores and promotes a run by the promotion policy. Off by default."
  type        = bool
  default     = false
}
