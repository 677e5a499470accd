# One provider configuration for every target. With `endpoint_url` unset (real AWS) the
# endpoints below are null, i.e. the provider's defaults; with it set (LocalStack, or
# moto in the tests) every service used here goes to that single endpoint.
locals {
  emulated = var.endpoint_url != null
}

provider "aws" {
  region     = var.region
  access_key = var.access_key
  secret_key = var.secret_key

  skip_credentials_validation = local.emulated
  skip_requesting_account_id  = local.emulated
  skip_metadata_api_check     = local.emulated
  s3_use_path_style           = local.emulated

  endpoints {
    cloudwatchlogs = var.endpoint_url
    iam            = var.endpoint_url
    lambda         = var.endpoint_url
    s3             = var.endpoint_url
    sts            = var.endpoint_url
  }

  default_tags {
    tags = var.tags
  }
}
