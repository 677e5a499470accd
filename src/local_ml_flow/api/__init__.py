"""The FastAPI service: ``create_app(runtime)``."""
