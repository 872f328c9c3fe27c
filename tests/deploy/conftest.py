"""One deployed stack (odqa.deploy.stack: the manifests' MLflow on the local PostgreSQL, artifacts in
moto's S3) for every test module of tests/deploy that needs a server: it takes seconds to start."""

from __future__ import annotations

import pytest

from odqa.deploy.stack import Stack, StackConfig


@pytest.fixture(scope="session")
def stack(tmp_path_factory) -> Stack:
    # A failing server call fails the test now, not after MLflow's minutes of retries with back-off;
    # no shared lock file: racing promotions must rely on what the server offers.
    mp = pytest.MonkeyPatch()
    mp.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    mp.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "60")
    mp.delenv("ODQA_REGISTRY_LOCK", raising=False)
    s = Stack(StackConfig(workdir=tmp_path_factory.mktemp("stack")))
    try:
        s.start()
    except Exception as e:
        s.stop()
        mp.undo()
        pytest.fail(f"the stack did not start: {e}", pytrace=False)
    yield s
    s.stop()
    mp.undo()
