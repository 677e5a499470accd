# LocalStack (docker compose up, or ./bin/start_all.sh):
#   terraform -chdir=terraform apply -var-file=localstack.tfvars
# Inside the compose network the terraform service overrides endpoint_url with
# http://localstack:4566. The keys are LocalStack's conventional dummies, not secrets.
endpoint_url  = "http://localhost:4566"
access_key    = "test"
secret_key    = "test"
region        = "us-east-1"
force_destroy = true

# Free LocalStack runs zip packages only (container images are a Pro feature).
package_type    = "Zip"
lambda_zip_path = "../lambdas/dist/local-ml-flow-lambda.zip"
dataset_path    = "../.cache/housing.csv"
