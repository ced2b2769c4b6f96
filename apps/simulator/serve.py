"""Run the simulator with uvicorn: used by ``manage.py azure_simulator`` and ``python -m apps.simulator``."""

import argparse
import logging

import uvicorn

from .app import create_app
from .config import load_config


def add_arguments(parser):
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8001, help="port to listen on (default 8001)")
    parser.add_argument("--config", default=None, help="simulator YAML (default apps/simulator/default.yaml)")
    parser.add_argument("--log-level", default="warning", help="uvicorn log level (default warning)")
    parser.add_argument("--api-key", default=None, help="API key to accept (default: the config's)")
    parser.add_argument("--ttft-ms", type=float, default=None,
                        help="time to first token for every deployment (default: the config's)")
    parser.add_argument("--path-prefix", action="append", default=None, dest="path_prefixes",
                        help="also serve {PREFIX}/{deployment}/chat/completions etc., as a gateway "
                        "(Cloudflare AI Gateway, APIM) forwards them; repeatable")
    parser.add_argument("--chunk-ms", type=float, default=None,
                        help="time between chunks for every deployment (default: the config's)")


def serve(*, host, port, config=None, log_level="warning", api_key=None, ttft_ms=None,
          chunk_ms=None, path_prefixes=None):
    """Serve until interrupted. A bad config raises ValueError before anything listens."""
    sim_config = load_config(config, {"path_prefixes": path_prefixes} if path_prefixes else None)
    if api_key:
        sim_config.api_key = api_key
    for deployment in sim_config.deployments.values():
        if ttft_ms is not None:
            deployment.ttft_ms = ttft_ms
        if chunk_ms is not None:
            deployment.chunk_ms = chunk_ms
    app = create_app(sim_config)
    # The access log would print every request; the request log is at GET /_sim/requests.
    logging.getLogger("uvicorn.error").setLevel(log_level.upper())
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False,
                lifespan="off", timeout_keep_alive=30)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m apps.simulator",
                                     description="Azure OpenAI simulator")
    add_arguments(parser)
    args = parser.parse_args(argv)
    serve(host=args.host, port=args.port, config=args.config, log_level=args.log_level,
          api_key=args.api_key, ttft_ms=args.ttft_ms, chunk_ms=args.chunk_ms,
          path_prefixes=args.path_prefixes)
