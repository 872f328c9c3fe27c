"""Stage configs: one pydantic model per stage, built one way (`from_dict`) from every source - CLI
flags, KFP parameters, saved JSON, serving settings - so a value is checked and typed in one place.

KFP carries numbers inside dict/list parameters as floats; pydantic's lax mode turns a whole float
back into an int where an int is declared (3.0 -> 3) and refuses 3.5, so no caller repairs types."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from odqa.errors import InputError


def warn_deprecated(old: str, new: str) -> None:
    """One line on stderr for an old spelling that still works until 0.2."""
    print(f"odqa: {old} is deprecated, use {new}", file=sys.stderr)


class ConfigError(InputError):
    """Bad config values, described on one line and naming where they came from (`source`: a file,
    flag or parameter; the config class when built in code)."""

    def __init__(
        self,
        error: ValidationError,
        config_class: type[BaseModel],
        source: object = None,
        labels: Mapping[str, str] | None = None,
    ):
        self.validation_error = error
        # Labels (e.g. CLI flags) already say where each value came from; otherwise name the class.
        where = source if source is not None or labels else config_class.__name__
        super().__init__(describe_errors(error, config_class, labels), path=where)


class StageConfig(BaseModel):
    """Base of every stage config: unknown keys are errors, assignments are validated, and every way
    in (`from_dict`, the constructor, assignment) reports bad values as one-line InputErrors."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())

    # Old spellings accepted until 0.2, with a warning: {old key: new key}, {field: {old value: new}}.
    renamed_keys: ClassVar[dict[str, str]] = {}
    renamed_values: ClassVar[dict[str, dict[Any, Any]]] = {}
    # Fields that say how to run (threads, batch sizes, where a server is), not what is built: they may
    # change between build and load (a moved cluster, another machine) without invalidating an output.
    runtime_fields: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, **values: Any) -> None:
        # pydantic calls an overridden __init__ from model_validate too, so from_dict lands here.
        try:
            super().__init__(**values)
        except ValidationError as e:
            raise ConfigError(e, type(self)) from None

    def __setattr__(self, name: str, value: Any) -> None:
        try:
            super().__setattr__(name, value)
        except ValidationError as e:
            raise ConfigError(e, type(self)) from None

    @classmethod
    def from_dict(
        cls,
        values: Mapping[str, Any] | None,
        source: object = None,
        labels: Mapping[str, str] | None = None,
    ) -> Self:
        """The config from loose values. `source` (a file, flag or parameter name) and `labels`
        ({field: how the user spelled it, e.g. a flag}) only shape the one-line error message."""
        if values is None:
            values = {}
        if not isinstance(values, Mapping):
            raise InputError(
                f"{cls.__name__} settings must be a JSON object, got {type(values).__name__}", path=source
            )
        try:
            return cls.model_validate(dict(values))
        except ConfigError as e:
            raise ConfigError(e.validation_error, cls, source, labels) from None
        except ValidationError as e:
            raise ConfigError(e, cls, source, labels) from None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values of every field; `from_dict(to_dict())` gives an equal config."""
        return self.model_dump(mode="json")

    def replace(self, **changes: Any) -> Self:
        """A copy with some fields changed, validated like any other input."""
        return type(self).from_dict({**self.model_dump(), **changes})

    @model_validator(mode="before")
    @classmethod
    def _accept_old_spellings(cls, data: Any) -> Any:
        if not isinstance(data, Mapping) or not (cls.renamed_keys or cls.renamed_values):
            return data
        data = dict(data)
        for old, new in cls.renamed_keys.items():
            if old in data:
                if new in data:
                    raise ValueError(f"give {new} only, not also its old name {old}")
                warn_deprecated(old, new)
                data[new] = data.pop(old)
        for name, renames in cls.renamed_values.items():
            value = data.get(name)
            if isinstance(value, str) and value in renames:
                warn_deprecated(f"{name}={value}", f"{name}={renames[value]}")
                data[name] = renames[value]
        return data


_EXPECTED = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "finite_number": "a finite number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "a string",
    "list_type": "a list",
    "tuple_type": "a list",
    "dict_type": "a JSON object",
}
_BOUNDS = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}
_BOUND_KEYS = {"greater_than": "gt", "greater_than_equal": "ge", "less_than": "lt", "less_than_equal": "le"}


def _reason(item: dict[str, Any]) -> str:
    kind, ctx, got = item["type"], item.get("ctx") or {}, item.get("input")
    if kind == "value_error":
        return str(ctx.get("error", item["msg"]))
    if kind in _EXPECTED:
        return f"must be {_EXPECTED[kind]}, got {got!r}"
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected')}, got {got!r}"
    if kind in _BOUNDS:
        return f"must be {_BOUNDS[kind]} {ctx.get(_BOUND_KEYS[kind])}, got {got!r}"
    if kind == "missing":
        return "is required"
    return f"{item['msg']}, got {got!r}"


def describe_errors(
    error: ValidationError, config_class: type[BaseModel], labels: Mapping[str, str] | None = None
) -> str:
    """Every problem of a ValidationError on one line: `field: what is wrong, got VALUE`; unknown keys
    are listed together with the known ones."""
    labels = labels or {}
    unknown: list[str] = []
    parts: list[str] = []
    for item in error.errors(include_url=False):
        loc = [str(p) for p in item["loc"]]
        if item["type"] == "extra_forbidden" and len(loc) == 1:
            unknown.append(labels.get(loc[0], loc[0]))
            continue
        if loc:
            loc[0] = labels.get(loc[0], loc[0])
        where = ".".join(loc)
        parts.append(f"{where}: {_reason(item)}" if where else _reason(item))
    if unknown:
        known = sorted(config_class.model_fields)
        parts.insert(0, f"{config_class.__name__} has no option(s) {sorted(unknown)}; known: {known}")
    return "; ".join(parts)


def parse_assignments(pairs: list[str], what: str = "option") -> dict[str, Any]:
    """CLI `key=value` pairs; a value is parsed as JSON when it can be (1.2, true, ["N","V"]), else
    kept as text."""
    import json

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
