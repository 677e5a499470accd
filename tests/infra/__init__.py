"""Infrastructure tests: Terraform, Lambda packaging, Dockerfiles, compose, workflows."""
