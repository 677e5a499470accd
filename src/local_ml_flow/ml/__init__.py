"""Pure machine-learning core: no I/O, no boto3."""
