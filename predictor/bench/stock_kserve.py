"""The alternative a KServe user would write: a minimal ``kserve.Model`` around the MLflow pyfunc.

Stock settings (FastAPI server, latency logging on); only gRPC is off so that several servers can
share the machine.
"""

from __future__ import annotations

import argparse
from typing import Any

import kserve
import mlflow.pyfunc
import pandas as pd


class PyfuncModel(kserve.Model):  # type: ignore[misc]
    def __init__(self, name: str, model_dir: str) -> None:
        super().__init__(name)
        self.model_dir = model_dir
        self.model: Any = None

    def load(self) -> bool:
        self.model = mlflow.pyfunc.load_model(self.model_dir)
        self.ready = True
        return True

    def predict(self, payload: Any, headers: dict[str, str] | None = None) -> dict[str, Any]:
        frame = pd.DataFrame(payload["instances"])
        return {"predictions": self.model.predict(frame).tolist()}


def main() -> None:
    p = argparse.ArgumentParser(description="A stock KServe server for one MLflow model directory.")
    p.add_argument("--model_name", required=True)
    p.add_argument("--model_dir", required=True)
    p.add_argument("--http_port", type=int, required=True)
    args, _ = p.parse_known_args()
    model = PyfuncModel(args.model_name, args.model_dir)
    model.load()
    kserve.ModelServer(http_port=args.http_port, enable_grpc=False).start([model])


if __name__ == "__main__":
    main()
