"""`odqa` command line. Each area registers its subcommands from its own module; this file only
dispatches and turns every expected failure into one line on stderr, `odqa <command>: error: <message>`,
with exit status 2 (130 on Ctrl-C); the traceback is shown only with `-v`."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import traceback

from odqa.errors import InputError

# Each module defines add_commands(subparsers); a subcommand sets `func(args) -> int | None`.
COMMAND_MODULES = ["data", "retrieval", "reader", "evaluate", "augment", "pipeline", "serve", "answer"]

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130
EXIT_INTERNAL = 1


class OdqaArgumentParser(argparse.ArgumentParser):
    """An argparse parser whose usage errors are one line naming the command and pointing at --help,
    like every other odqa error (argparse prints the whole usage block otherwise)."""

    def error(self, message: str):  # noqa: D102 - argparse's hook
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _add_verbose(parser: argparse.ArgumentParser, default) -> None:
    parser.add_argument(
        "-v", "--verbose", action="store_true", default=default, help="debug logging and tracebacks"
    )


def _leaf_parsers(parser: argparse.ArgumentParser):
    """Every parser that runs a command (subcommands of subcommands included)."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield parser
        return
    for action in subs:
        for child in dict.fromkeys(action.choices.values()):
            yield from _leaf_parsers(child)


def build_parser() -> argparse.ArgumentParser:
    parser = OdqaArgumentParser(prog="odqa", description="Open-domain question answering over Wikipedia.")
    _add_verbose(parser, False)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"odqa.cli.{name}")
        module.add_commands(sub)
    for leaf in _leaf_parsers(parser):
        if leaf is not parser:
            _add_verbose(leaf, argparse.SUPPRESS)  # `odqa index -v ...` works as well as `odqa -v index`
    return parser


def _command_name(args: argparse.Namespace) -> str:
    name = getattr(args, "command", None) or ""
    action = getattr(args, "pipeline_command", None)
    return f"{name} {action}" if name == "pipeline" and action else name


def _one_line(text: str) -> str:
    """A message as one line: later lines (a library's detail) joined, whitespace squeezed."""
    return " ".join(text.split())


def describe_error(e: BaseException) -> str | None:
    """The one-line message for an expected failure, None for an unexpected one (a bug)."""
    if isinstance(e, InputError):
        return _one_line(str(e))
    if isinstance(e, OSError):
        # A path the user gave (permission, a folder where a file belongs, a full disk) or a
        # service that does not answer (requests' and urllib's connection errors are OSErrors).
        filename = getattr(e, "filename", None)
        if filename is not None:
            if isinstance(e, IsADirectoryError):
                return f"{filename}: is a folder, expected a file"
            return _one_line(f"{filename}: {e.strerror or e}")
        return _one_line(f"{type(e).__name__}: {e}")
    return None


class _CurrentStderr(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time of the record, not the stream it was created with
    (a caller that swaps or closes stderr after main() returned, as pytest's capture does, would
    otherwise get 'I/O operation on closed file')."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def _configure_logging(verbose: bool) -> None:
    handler = _CurrentStderr()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=[handler], force=True)
    if not verbose:
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def _quiet_stdout() -> None:
    """After a broken pipe (`odqa validate ... | head`), point stdout at devnull so the interpreter's
    final flush does not raise again (the recipe of the Python docs, `signal` module notes)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    verbose = bool(getattr(args, "verbose", False))
    _configure_logging(verbose)
    command = f"odqa {_command_name(args)}"
    try:
        rc = args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, inside the handler, not at interpreter exit
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _quiet_stdout()
        return EXIT_BAD_INPUT
    except Exception as e:
        message = describe_error(e)
        if verbose:
            traceback.print_exc()
        if message is None:
            hint = "" if verbose else " (run with -v for the traceback)"
            detail = _one_line(f"{type(e).__name__}: {e}")
            print(f"{command}: internal error: {detail}{hint}", file=sys.stderr)
            return EXIT_INTERNAL
        print(f"{command}: error: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
