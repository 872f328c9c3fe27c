"""`odqa serve`: one command starts the service; a bad flag, an unreachable registry, a missing database
or a missing alias is one line and exit 2 before anything listens or is written (the command serving
for real: tests/service/test_service.py)."""

from __future__ import annotations

import pytest

from odqa import tracking

SERVE = ("serve",)


def test_every_serve_config_field_is_a_flag_with_its_default_in_the_help():
    import argparse

    from odqa.cli import build_parser
    from odqa.cli.options import config_from_args
    from odqa.service.config import ServeConfig

    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    by_dest = {a.dest: a for a in action.choices["serve"]._actions}
    for name, field in ServeConfig.model_fields.items():
        flag = by_dest[name]
        assert "--" + name.replace("_", "-") in flag.option_strings
        assert field.description.rstrip(".") in flag.help and "(default: " in flag.help
    args = parser.parse_args(["serve", "--port", "9000", "--no-admin-reload", "--max-wait-ms", "2.5"])
    config = config_from_args(ServeConfig, args)
    assert config == ServeConfig(port=9000, admin_reload=False, max_wait_ms=2.5)


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--port", "-1"], "--port: must be >= 0, got '-1'"),
        (["--max-wait-ms", "x"], "--max-wait-ms: must be a number, got 'x'"),
        (
            ["--model", "models:/odqa"],
            "--model: 'models:/odqa' is not models:/NAME@ALIAS nor models:/NAME/VERSION",
        ),
        (["--tracking-uri", "http://127.0.0.1:9"], "MLflow at http://127.0.0.1:9/health does not answer"),
    ],
)
def test_bad_flags_and_unreachable_registries_are_one_line(run_cli, argv, message):
    rc, out, err = run_cli(["serve", *argv], modules=SERVE)
    assert rc == 2 and out == ""
    assert err.startswith("odqa serve: error: ") and message in err and err.count("\n") == 1, err


def test_a_missing_database_is_not_created(run_cli, tmp_path):
    db = tmp_path / "runs" / "mlflow.db"
    rc, _, err = run_cli(["serve", "--tracking-uri", f"sqlite:///{db}"], modules=SERVE)
    assert rc == 2 and f"no MLflow database at {db}" in err
    assert not db.parent.exists()


def test_a_missing_alias_is_one_line(run_cli, tmp_path):
    uri = tracking.sqlite_uri(tmp_path / "mlflow.db")
    tracking.client(uri).search_experiments()  # an empty registry
    rc, _, err = run_cli(["serve", "--tracking-uri", uri, "--model", "models:/odqa@champion"], modules=SERVE)
    assert rc == 2 and err.startswith(f"odqa serve: error: odqa@champion: not found in the registry at {uri}")
    assert err.count("\n") == 1


def test_a_port_in_use_is_one_line(run_cli, monkeypatch):
    import socket

    from odqa.service.models import ModelSource

    monkeypatch.setattr(ModelSource, "check_registry", lambda self: None)
    monkeypatch.setattr(ModelSource, "resolve", lambda self: "1")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        rc, _, err = run_cli(["serve", "--port", str(port)], modules=SERVE)
    assert (
        rc == 2
        and err
        == f"odqa serve: error: cannot listen on 127.0.0.1:{port} (--host/--port): Address already in use\n"
    )
