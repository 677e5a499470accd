locals {
  is_zip = var.package_type == "Zip"

  # One code artifact, two entry points: the handler (Zip) or the image CMD (Image).
  functions = {
    ingestion = {
      name        = var.ingestion_function_name
      handler     = "local_ml_flow.handlers.ingestion_handler"
      description = "local-ml-flow: read the dataset, train, save the model and the test split"
    }
    inference = {
      name        = var.inference_function_name
      handler     = "local_ml_flow.handlers.inference_handler"
      description = "local-ml-flow: load the model and the test split, evaluate, save the score"
    }
  }

  # Lambda compares this with the CodeSha256 of the deployed code: a new zip redeploys.
  # (A missing zip is reported by the precondition of aws_s3_object.lambda_zip.)
  zip_exists = local.is_zip && fileexists(var.lambda_zip_path)
  zip_sha256 = local.zip_exists ? filebase64sha256(var.lambda_zip_path) : null
}

# ---------------------------------------------------------------- buckets --------------

resource "aws_s3_bucket" "data" {
  bucket        = var.data_bucket
  force_destroy = var.force_destroy
}

resource "aws_s3_bucket_versioning" "data" {
  bucket = aws_s3_bucket.data.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket" "models" {
  bucket        = var.models_bucket
  force_destroy = var.force_destroy
}

resource "aws_s3_bucket" "artifacts" {
  count = local.is_zip ? 1 : 0

  bucket        = var.artifacts_bucket
  force_destroy = var.force_destroy
}

locals {
  private_buckets = merge(
    { data = aws_s3_bucket.data.id, models = aws_s3_bucket.models.id },
    local.is_zip ? { artifacts = aws_s3_bucket.artifacts[0].id } : {},
  )
}

resource "aws_s3_bucket_public_access_block" "this" {
  for_each = local.private_buckets

  bucket                  = each.value
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

# The initial dataset. The etag makes Terraform re-upload it when the local file changes.
resource "aws_s3_object" "dataset" {
  bucket       = aws_s3_bucket.data.id
  key          = var.dataset_key
  source       = var.dataset_path
  etag         = filemd5(var.dataset_path)
  content_type = "text/csv"

  depends_on = [aws_s3_bucket_versioning.data]
}

# The Lambda zip is over the 50 MB limit of a direct upload, so it goes through S3.
resource "aws_s3_object" "lambda_zip" {
  count = local.is_zip ? 1 : 0

  bucket      = aws_s3_bucket.artifacts[0].id
  key         = "lambda/local-ml-flow-lambda.zip"
  source      = var.lambda_zip_path
  source_hash = local.zip_sha256

  lifecycle {
    precondition {
      condition     = local.zip_exists
      error_message = "The Lambda zip (lambda_zip_path) does not exist: build it with ./bin/build_lambdas.sh."
    }
  }
}

# ---------------------------------------------------------------- IAM ------------------

data "aws_iam_policy_document" "assume_lambda" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "lambda" {
  name               = "local-ml-flow-lambda"
  assume_role_policy = data.aws_iam_policy_document.assume_lambda.json
}

resource "aws_cloudwatch_log_group" "lambda" {
  for_each = local.functions

  name              = "/aws/lambda/${each.value.name}"
  retention_in_days = var.log_retention_days
}

# Least privilege: the two buckets and the functions' own log groups, nothing else.
data "aws_iam_policy_document" "lambda" {
  statement {
    sid       = "ListBuckets"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.data.arn, aws_s3_bucket.models.arn]
  }

  statement {
    sid       = "ReadWriteObjects"
    actions   = ["s3:GetObject", "s3:PutObject"]
    resources = ["${aws_s3_bucket.data.arn}/*", "${aws_s3_bucket.models.arn}/*"]
  }

  statement {
    sid       = "WriteLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = [for group in aws_cloudwatch_log_group.lambda : "${group.arn}:*"]
  }
}

resource "aws_iam_role_policy" "lambda" {
  name   = "local-ml-flow-lambda"
  role   = aws_iam_role.lambda.id
  policy = data.aws_iam_policy_document.lambda.json
}

# ---------------------------------------------------------------- functions ------------

resource "aws_lambda_function" "this" {
  for_each = local.functions

  function_name = each.value.name
  description   = each.value.description
  role          = aws_iam_role.lambda.arn
  package_type  = var.package_type
  architectures = ["x86_64"]
  timeout       = var.lambda_timeout
  memory_size   = var.lambda_memory_size

  # Zip: code from S3, runtime + handler.
  runtime          = local.is_zip ? "python3.12" : null
  handler          = local.is_zip ? each.value.handler : null
  s3_bucket        = local.is_zip ? aws_s3_object.lambda_zip[0].bucket : null
  s3_key           = local.is_zip ? aws_s3_object.lambda_zip[0].key : null
  source_code_hash = local.zip_sha256

  # Image: one image for both functions, the command picks the handler.
  image_uri = local.is_zip ? null : var.image_uri

  dynamic "image_config" {
    for_each = local.is_zip ? [] : [each.value.handler]

    content {
      command = [image_config.value]
    }
  }

  # No endpoint here, ever: LocalStack injects AWS_ENDPOINT_URL itself, AWS must not get one.
  environment {
    variables = {
      LMF_DATA_BUCKET   = aws_s3_bucket.data.id
      LMF_MODELS_BUCKET = aws_s3_bucket.models.id
      LMF_DATASET_KEY   = var.dataset_key
    }
  }

  lifecycle {
    precondition {
      condition     = local.is_zip || var.image_uri != null
      error_message = "The package_type \"Image\" needs image_uri (an image built from lambdas/Dockerfile and pushed to ECR)."
    }
  }

  depends_on = [aws_iam_role_policy.lambda, aws_cloudwatch_log_group.lambda]
}

# ---------------------------------------------------------------- retrain on upload ----

# Off by default (var.retrain_on_upload). S3 invokes the ingestion function asynchronously
# with the upload's event; the function maps the key to a dataset version and ignores every
# other key (the same filters as src/local_ml_flow/notifications.py, FILTERS).
data "aws_caller_identity" "current" {
  count = var.retrain_on_upload ? 1 : 0
}

resource "aws_lambda_permission" "retrain_on_upload" {
  count = var.retrain_on_upload ? 1 : 0

  statement_id   = "local-ml-flow-retrain-on-upload"
  action         = "lambda:InvokeFunction"
  function_name  = aws_lambda_function.this["ingestion"].function_name
  principal      = "s3.amazonaws.com"
  source_arn     = aws_s3_bucket.data.arn
  source_account = data.aws_caller_identity.current[0].account_id
}

resource "aws_s3_bucket_notification" "retrain_on_upload" {
  count = var.retrain_on_upload ? 1 : 0

  bucket = aws_s3_bucket.data.id

  # housing's dataset (the API, the CLI or `aws s3 cp` writing it)
  lambda_function {
    id                  = "retrain-housing"
    lambda_function_arn = aws_lambda_function.this["ingestion"].arn
    events              = ["s3:ObjectCreated:*"]
    filter_prefix       = var.dataset_key
  }

  # registered datasets' versions: datasets/<name>/versions/<sha256>.csv
  lambda_function {
    id                  = "retrain-datasets"
    lambda_function_arn = aws_lambda_function.this["ingestion"].arn
    events              = ["s3:ObjectCreated:*"]
    filter_prefix       = "datasets/"
    filter_suffix       = ".csv"
  }

  # the initial dataset is uploaded before: deploying trains nothing by itself
  depends_on = [aws_lambda_permission.retrain_on_upload, aws_s3_object.dataset]
}
