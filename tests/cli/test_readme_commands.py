"""README.md's "The CLI, stage by stage" block, run as written: the fenced commands are read from the
README itself (so the test fails when the README drifts from the CLI), on a five-article KorQuAD slice.

Substitutions, and nothing else: `odqa` is this environment's executable; ODQA_DATA_DIR and the
literal `../shared/data` point at the slice; `odqa train` gets `--max-steps 2` appended (a flag the
README's command accepts as is) so no real training happens."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

README = Path(__file__).resolve().parents[2] / "README.md"
ODQA = Path(sys.executable).with_name("odqa")
SECTION = "## The CLI, stage by stage"
APPENDED = {"train": ["--max-steps", "2"]}


def readme_commands(text: str) -> list[list[str]]:
    """The `odqa ...` commands of the first ```sh block after SECTION, continuation lines joined and
    comments dropped."""
    section = text[text.index(SECTION) :]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block, f"no ```sh block after {SECTION!r} in README.md"
    joined = block.group(1).replace("\\\n", " ")
    return [shlex.split(line, comments=True) for line in joined.splitlines() if line.strip()]


def test_readme_block_is_parsed():
    """The block holds every stage, in the order the DAG runs them."""
    names = [argv[1] for argv in readme_commands(README.read_text(encoding="utf-8"))]
    assert names[:3] == ["validate", "prepare-korquad", "preprocess"] and names[-1] == "ensemble"


def test_readme_cli_block_runs_as_written(tmp_path, korquad_path):
    data = tmp_path / "data"
    (data / "korquad").mkdir(parents=True)
    squad = json.loads(korquad_path.read_text(encoding="utf-8"))
    squad["data"] = squad["data"][:5]
    (data / "korquad" / "KorQuAD_v1.0_dev.json").write_text(
        json.dumps(squad, ensure_ascii=False), encoding="utf-8"
    )
    env = {**os.environ, "ODQA_DATA_DIR": str(data), "ODQA_PROGRESS_INTERVAL": "30"}
    for argv in readme_commands(README.read_text(encoding="utf-8")):
        assert argv[0] == "odqa"
        args = [a.replace("../shared/data", str(data)) for a in argv[1:]]
        args += APPENDED.get(args[0], [])
        result = subprocess.run([str(ODQA), *args], cwd=tmp_path, capture_output=True, text=True, env=env)
        assert result.returncode == 0, f"{shlex.join(argv)}\n{result.stderr[-3000:]}"
        if args[0] == "evaluate":  # the README: its last stdout line is one JSON object
            assert "exact_match" in json.loads(result.stdout.splitlines()[-1])
    assert (tmp_path / "work" / "ens" / "predictions.json").is_file()


MAKE_RUN_ARGS = re.compile(r"`(?:make run )?(ARGS=(?:\"(?:[^\"\\]|\\.)*\"|'[^']*'))`")
# The same in an indented code block of docs/ ("    make run ARGS=...").
MAKE_RUN_BLOCK = re.compile(r"^ {4}make run (ARGS=(?:\"(?:[^\"\\]|\\.)*\"|'[^']*'))$", re.MULTILINE)


@pytest.mark.unit
def test_readme_make_run_args_reach_the_cli_intact(tmp_path):
    """Every `make run ARGS=...` example in the README and docs/, expanded by make itself (`make -n`) and split by the
    shell as the recipe would be, parses with odqa's own parser: make hands ARGS to the shell, which
    strips quotes a JSON value needs (a README example once lost them)."""
    from odqa.cli import build_parser

    examples = MAKE_RUN_ARGS.findall(README.read_text(encoding="utf-8"))
    assert any("--reader-configs" in e for e in examples), "the README's make run examples moved"
    repo = README.parent
    texts = [path.read_text(encoding="utf-8") for path in sorted((repo / "docs").glob("*.md"))]
    docs = [e for text in texts for e in MAKE_RUN_BLOCK.findall(text)]
    assert any("--reader-configs" in e for e in docs), "docs/reader-recipe.md's make run examples moved"
    lines = [x for text in texts for x in text.splitlines() if x.startswith("    make run ARGS=")]
    assert len(docs) == len(lines), f"an example's quotes do not close where the line ends: {lines}"
    examples += docs
    for example in examples:
        recipe = subprocess.run(
            ["bash", "-c", f"make -s -n run {example}"], cwd=repo, capture_output=True, text=True, check=True
        ).stdout
        line = next(x for x in recipe.splitlines() if "odqa pipeline run" in x)
        # The shell's own word splitting, printed one argument per line (no odqa run).
        words = subprocess.run(
            ["bash", "-c", "printf '%s\\n' " + line.split("/odqa ", 1)[1]],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()
        args = build_parser().parse_args(words)
        if "--reader-configs" in example:
            assert isinstance(args.reader_configs, list) and all(
                isinstance(c, dict) for c in args.reader_configs
            )
