"""`odqa serve`: the champion over HTTP (odqa.service); flags generated from ServeConfig. The model
source is checked before the server starts (registry there, alias set), so a wrong flag, an unreachable
registry or a missing alias is one line and exit 2; the model then loads while /ready says 503."""

from __future__ import annotations

import argparse

from odqa.cli.options import add_config_arguments, config_from_args
from odqa.service.config import ServeConfig


def add_commands(subparsers) -> None:
    serve = subparsers.add_parser(
        "serve",
        help="serve a registered model over HTTP (JSON API, /metrics, a page at /)",
        description="Serve models:/odqa@champion (or --model) on --host:--port: POST /v1/answer, "
        "/v1/answers, GET /ready, /health, /metrics, /openapi.json, the page at /. docs/serving.md.",
    )
    add_config_arguments(serve, ServeConfig)
    serve.set_defaults(func=_serve)


def _serve(args: argparse.Namespace) -> int:
    import os

    os.environ.setdefault("TQDM_DISABLE", "1")  # before transformers imports tqdm: no bar per request
    from odqa.service.models import ModelSource
    from odqa.service.server import serve

    config = config_from_args(ServeConfig, args)
    if config.precision:
        from odqa.errors import InputError
        from odqa.reader.device import Placement

        try:  # a precision this machine lacks (fp16 without CUDA) fails now, not at the model's load
            Placement.resolve("auto", config.precision)
        except InputError as e:
            raise InputError(f"--precision: {e}") from None
    source = ModelSource.parse(config.model, config.tracking_uri)
    if not config.wait_for_model:
        source.check_registry()
        source.resolve()  # the alias exists (the version is loaded once the server listens)
    serve(config)
    return 0
