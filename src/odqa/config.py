"""Stage configs from loose values (KFP parameters, JSON files, CLI flags)."""

from __future__ import annotations

from typing import Any


def typed_config(config_class: type, values: dict[str, Any]) -> Any:
    """A stage config from KFP parameter values: KFP carries numbers inside dicts and lists as
    floats, so a whole float for an int field becomes an int again."""
    import dataclasses

    types = {f.name: str(f.type) for f in dataclasses.fields(config_class)}
    fixed = {}
    for key, value in values.items():
        kind = types.get(key, "")
        if isinstance(value, float) and value.is_integer() and "int" in kind and "float" not in kind:
            value = int(value)
        fixed[key] = value
    return config_class(**fixed)


def parse_assignments(pairs: list[str], what: str = "option") -> dict[str, Any]:
    """CLI `key=value` pairs; a value is parsed as JSON when it can be (1.2, true, ["N","V"]), else
    kept as text."""
    import json

    from odqa.errors import InputError

    values: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InputError(f"{what} {pair!r} must look like key=value")
        try:
            values[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            values[key.strip()] = value
    return values
