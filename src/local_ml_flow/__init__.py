"""local-ml-flow: a local, reproducible MLOps pipeline on emulated or real AWS."""

__version__ = "0.1.0"
