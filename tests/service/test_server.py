"""odqa.service.server: how uvicorn is set up."""

from __future__ import annotations

import pytest

from odqa.service.server import _uvicorn_config

pytestmark = pytest.mark.unit


async def _app(scope, receive, send):  # the smallest ASGI app uvicorn's config accepts
    raise AssertionError("not called")


def test_the_server_parses_http_with_httptools_on_uvloop():
    """Not uvicorn's "auto": without httptools it falls back to h11, whose keep-alive responses waited
    about 40 ms a request on the client's delayed ACK (bench/serving.py)."""
    config = _uvicorn_config(_app)
    config.load()  # imports the protocol and the loop: a missing dependency fails here
    assert config.http_protocol_class.__name__ == "HttpToolsProtocol"
    assert config.loop == "uvloop"
