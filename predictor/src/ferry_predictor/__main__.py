"""``ferry-predictor --model_name NAME --http_port PORT``: the container entry point.

Every setting is read and checked by ``ferry_predictor.config`` before anything starts (a bad one
exits 2 naming it); ``--help`` lists the flags and the environment.
"""

from __future__ import annotations

import logging
import sys

from ferry_common.envconfig import or_exit
from ferry_common.logs import configure

from ferry_predictor.config import PROG, Config, load
from ferry_predictor.secrets import redact


def main(argv: list[str] | None = None) -> int:
    with or_exit(PROG):
        config = load(argv)
    configure_logging(config)
    serve(config)
    return 0


def configure_logging(config: Config) -> None:
    """JSON lines; the one model this process serves is on every line (requests bind their id)."""
    configure("predictor", config.log_level, fields={"model": config.model_name})


def serve(config: Config) -> None:
    # Imported after the configuration is checked so that --help answers without the serving stack.
    import uvicorn
    from ferry_common import metricsport

    from ferry_predictor.app import PredictorApp

    logging.getLogger("ferry_predictor").info(
        "serving %r on %s:%d, metrics on :%s (model %s, tracking %s, colour %r)",
        config.model_name,
        config.host,
        config.http_port,
        config.metrics_port or "-",
        redact(config.model_uri),
        redact(config.tracking_uri or "-"),
        config.color,
    )
    app = PredictorApp(config)
    main = uvicorn.Config(
        app,
        host=config.host,
        port=config.http_port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_config=None,  # uvicorn's loggers reach the root handler: JSON lines like ours
        log_level=config.log_level,
        server_header=False,
        date_header=False,
        timeout_keep_alive=75,
        # Without a bound uvicorn waits for ever on a request in flight, past the grace period.
        timeout_graceful_shutdown=config.shutdown_timeout_seconds,
    )
    metrics = (
        metricsport.config(
            metricsport.exposition_app(app.exposition), host=config.host, port=config.metrics_port
        )
        if config.metrics_port
        else None
    )
    metricsport.run(main, metrics)


if __name__ == "__main__":
    sys.exit(main())
