"""Command-line flags generated from a stage config, so a flag's type, default and help are the config
field's and cannot drift from it; values go through `Config.from_dict` like every other source."""

from __future__ import annotations

import argparse
import json
import types
from collections.abc import Iterable, Mapping
from typing import Any, Literal, Union, get_args, get_origin

from pydantic.fields import FieldInfo

from odqa.config import StageConfig, warn_deprecated
from odqa.errors import InputError

_NONE_WORDS = ("none", "null")


def flag_for(name: str, flags: Mapping[str, str] | None = None) -> str:
    """The flag of a config field: `--field-name`, unless `flags` spells it otherwise."""
    return (flags or {}).get(name) or "--" + name.replace("_", "-")


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """(the annotation without None, whether None is allowed)."""
    if get_origin(annotation) in (Union, types.UnionType):
        members = [a for a in get_args(annotation) if a is not type(None)]
        optional = len(members) < len(get_args(annotation))
        return (members[0] if len(members) == 1 else annotation), optional
    return annotation, False


def _kind(annotation: Any) -> str:
    """How a value of this annotation is written on the command line."""
    base, _ = _unwrap(annotation)
    origin = get_origin(base) or base
    if origin is bool:
        return "bool"
    if origin in (list, tuple):
        return "list"
    if origin is dict:
        return "dict"
    if origin is Literal:
        return "choice"
    return "text"


def _show(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, str) and not value:
        return '""'
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value) if value else "empty"
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False) if value else "{}"
    return str(value)


def describe_field(field: FieldInfo) -> str:
    """A field's description with its default, as help text."""
    default = field.get_default(call_default_factory=True)
    text = (field.description or "").rstrip(".")
    return f"{text} (default: {_show(default)})" if text else f"default: {_show(default)}"


def _metavar(annotation: Any) -> str:
    base, _ = _unwrap(annotation)
    if get_origin(base) is Literal:
        return "{" + ",".join(str(a) for a in get_args(base)) + "}"
    return {int: "N", float: "X"}.get(base, "VALUE" if _kind(annotation) == "list" else "TEXT")


class _DeprecatedFlag(argparse.Action):
    """An old spelling of a flag: warns on stderr, then stores like the new one (or stores `const`
    for an old switch that stood for a value)."""

    def __init__(self, option_strings, dest, new_flag: str, **kwargs):
        self.new_flag = new_flag
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        warn_deprecated(option_string, self.new_flag)
        setattr(namespace, self.dest, self.const if self.nargs == 0 else values)


def add_deprecated_flag(
    parser: argparse.ArgumentParser, old: str, dest: str, new_flag: str, nargs: Any = None, **kwargs: Any
) -> None:
    """Accept `old` until 0.2 as a hidden alias of `new_flag` (same destination), with a warning."""
    parser.add_argument(
        old,
        dest=dest,
        action=_DeprecatedFlag,
        new_flag=new_flag,
        nargs=nargs,
        default=argparse.SUPPRESS,
        help=argparse.SUPPRESS,
        **kwargs,
    )


def add_config_arguments(
    parser: argparse.ArgumentParser,
    config_class: type[StageConfig],
    exclude: Iterable[str] = (),
    aliases: Mapping[str, str | tuple[str, Any]] | None = None,
    flags: Mapping[str, str] | None = None,
) -> None:
    """One `--field-name` per field of `config_class` (not in `exclude`), help from the field's
    description and default. Bools get `--x/--no-x`; lists take several values, comma-separated
    values or one JSON list; `none` is None where a field allows it. No default is stored: a flag
    not given leaves the config's default.

    `flags` renames a field's flag ({field: "--flag"}); `aliases` keeps old spellings until 0.2,
    with a warning: {"--old-flag": field} takes a value like the new flag, {"--old-switch": (field,
    value)} is a switch that sets `value`."""
    excluded = set(exclude)
    for name, field in config_class.model_fields.items():
        if name in excluded:
            continue
        kind = _kind(field.annotation)
        kwargs: dict[str, Any] = {
            "dest": name,
            "default": argparse.SUPPRESS,
            "help": describe_field(field).replace("%", "%%"),
        }
        if kind == "bool":
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["metavar"] = _metavar(field.annotation)
            if kind == "list":
                kwargs["nargs"] = "+"
        parser.add_argument(flag_for(name, flags), **kwargs)
    for old, target in (aliases or {}).items():
        if isinstance(target, tuple):
            field_name, value = target
            add_deprecated_flag(
                parser, old, field_name, f"{flag_for(field_name, flags)} {_show(value)}", nargs=0, const=value
            )
        else:
            kind = _kind(config_class.model_fields[target].annotation)
            add_deprecated_flag(
                parser, old, target, flag_for(target, flags), nargs="+" if kind == "list" else None
            )


def add_force_argument(parser: argparse.ArgumentParser) -> None:
    """`--force` for a command that writes a folder: replace a folder that is not this command's own
    earlier output (a file is never replaced)."""
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace --out even when it is a folder of other files (never a file, nor the current "
        "folder) (default: off: only an empty folder or this command's own earlier output is replaced)",
    )


def _from_command_line(raw: Any, annotation: Any, flag: str) -> Any:
    """A flag's text as the value the config validates: lists split, JSON parsed, `none` as None;
    numbers stay text for the config to check (so its message names the flag)."""
    kind = _kind(annotation)
    _, optional = _unwrap(annotation)
    if kind == "bool":
        return raw
    if kind == "list":
        tokens = raw if isinstance(raw, list) else [raw]
        if optional and len(tokens) == 1 and tokens[0].strip().lower() in _NONE_WORDS:
            return None
        if len(tokens) == 1 and tokens[0].lstrip().startswith("["):
            try:
                return json.loads(tokens[0])
            except json.JSONDecodeError as e:
                raise InputError(f"{flag}: not a JSON list ({e.msg}): {tokens[0]!r}") from None
        return [item.strip() for token in tokens for item in token.split(",") if item.strip()]
    if optional and isinstance(raw, str) and raw.strip().lower() in _NONE_WORDS:
        return None
    if kind == "dict":
        try:
            return json.loads(raw)
        except json.JSONDecodeError as e:
            raise InputError(f"{flag}: not a JSON object ({e.msg}): {raw!r}") from None
    return raw


def config_from_args(
    config_class: type[StageConfig],
    args: argparse.Namespace,
    flags: Mapping[str, str] | None = None,
    **fixed: Any,
) -> StageConfig:
    """The config from the flags `add_config_arguments` added (plus `fixed` values set by the command
    itself); a bad value is an InputError naming its flag, e.g. `--top-k-passages: must be an
    integer, got 'x'`."""
    values: dict[str, Any] = {}
    labels: dict[str, str] = {}
    for name, field in config_class.model_fields.items():
        flag = flag_for(name, flags)
        labels[name] = flag
        if hasattr(args, name):
            values[name] = _from_command_line(getattr(args, name), field.annotation, flag)
    return config_class.from_dict({**values, **fixed}, labels=labels)


def config_help(config_class: type[StageConfig], exclude: Iterable[str] = ()) -> str:
    """`name=...: description (default: ...)` lines, for options given as key=value."""
    excluded = set(exclude)
    lines = []
    for name, field in config_class.model_fields.items():
        if name not in excluded:
            base, _ = _unwrap(field.annotation)
            choices = f" {_metavar(base)}" if get_origin(base) is Literal else ""
            lines.append(f"  {name}{choices}: {describe_field(field)}")
    return "\n".join(lines)
