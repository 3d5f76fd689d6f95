"""Ferry predictor: serves one MLflow model over KServe v1 and the Open Inference Protocol v2."""

__version__ = "0.1.0"
