"""Ferry's example model: Titanic survival, trained on the classic 1,309-passenger table.

``python -m ferry_mlflow_example`` (``make train``) trains two differently configured
scikit-learn pipelines and registers them as versions 1 and 2 of ``titanic-survival``.
"""
