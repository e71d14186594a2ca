"""ragflow-dagster: keep RAGFlow datasets in sync with folders and S3 buckets, with Dagster."""

__version__ = "0.1.0"

__all__ = ["__version__"]
