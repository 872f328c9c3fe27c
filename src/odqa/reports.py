"""What stages show people: flattened metrics, Markdown/HTML reports and PNG plots.

One place for matplotlib (headless, written atomically, always closed) and one flattener for nested
dicts, so every stage's plots and MLflow keys look alike."""

from __future__ import annotations

import base64
import contextlib
import html
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from odqa.io import atomic_path, read_json


def flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts as dotted keys ({"a": {"b": 1}} -> {"a.b": 1}); an empty dict stays a leaf."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def flat_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """The numeric leaves of nested metrics as dotted keys (for MLflow and KFP Metrics)."""
    return {
        k: float(v)
        for k, v in flatten(metrics).items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }


def markdown_report(title: str, metrics: dict[str, Any], notes: Iterable[str] = ()) -> str:
    lines = [f"# {title}", "", "| metric | value |", "|---|---|"]
    lines += [f"| {k} | {v:.4g} |" for k, v in flat_metrics(metrics).items()]
    lines += ["", *notes]
    return "\n".join(lines) + "\n"


def html_report(title: str, metrics: dict[str, Any], images: Iterable[str | os.PathLike] = ()) -> str:
    """A self-contained page (images inlined) for the KFP UI's HTML viewer."""
    rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{v:.4g}</td></tr>" for k, v in flat_metrics(metrics).items()
    )
    imgs = "".join(
        f'<img src="data:image/png;base64,{base64.b64encode(Path(p).read_bytes()).decode()}"/>'
        for p in images
        if Path(p).is_file()
    )
    return f"<html><body><h1>{html.escape(title)}</h1><table>{rows}</table>{imgs}</body></html>\n"


@contextlib.contextmanager
def png_figure(path: str | os.PathLike, figsize: tuple[float, float] = (6, 4), dpi: int = 110) -> Iterator:
    """Yield (fig, ax) on the headless backend; the PNG replaces `path` only if the block succeeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=figsize)
    try:
        yield fig, ax
        ax.grid(True, which="both", alpha=0.3)
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=dpi)
    finally:
        plt.close(fig)


def line_plot(
    path: str | os.PathLike,
    x: Iterable[float],
    y: Iterable[float],
    *,
    xlabel: str,
    ylabel: str,
    title: str,
    marker: str | None = "o",
) -> Path:
    """One curve (training loss, a tuning sweep)."""
    with png_figure(path, figsize=(6, 3.5)) as (_, ax):
        ax.plot(list(x), list(y), marker=marker)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
    return Path(path)


def score_histogram(nbest_path: str | os.PathLike, png_path: str | os.PathLike) -> Path:
    """Histogram of each question's top answer score: a reader that is unsure everywhere shows it here."""
    nbest = read_json(nbest_path)
    scores = [float(entries[0]["score"]) for entries in nbest.values() if entries]
    with png_figure(png_path, dpi=100) as (_, ax):
        ax.hist(scores, bins=30, color="tab:blue")
        ax.set_xlabel("top answer score")
        ax.set_ylabel("questions")
        ax.set_title(f"Answer scores ({len(scores)} questions)")
    return Path(png_path)
