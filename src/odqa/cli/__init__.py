"""`odqa` command line. Each area registers its subcommands from its own module; this file only
dispatches and turns InputError into one line on stderr with exit code 2."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from odqa.errors import InputError

# Each module defines add_commands(subparsers); a subcommand sets `func(args) -> int | None`.
COMMAND_MODULES = ["data", "retrieval", "reader", "evaluate", "augment", "pipeline"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="odqa", description="Open-domain question answering over Wikipedia."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"odqa.cli.{name}")
        module.add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        rc = args.func(args)
    except InputError as e:
        print(f"odqa {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"odqa {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
