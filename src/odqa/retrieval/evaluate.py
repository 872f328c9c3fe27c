"""Retrieval quality: recall@k and MRR, judged two ways.

By gold document: the question's `document_id` (mapped through doc_aliases when preprocess dropped a
duplicate) is among the top-k hits' document_ids. By answer: some gold answer text occurs in a top-k
passage, which also credits other passages that happen to hold the answer (what a reader needs)."""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

from odqa.data import load_doc_aliases, load_qa, load_retrieved
from odqa.errors import InputError
from odqa.io import write_json
from odqa.schema import RECALL_PLOT_FILE, RETRIEVAL_METRICS_FILE, Hit, QAExample, RetrievalResult

logger = logging.getLogger(__name__)

RECALL_KS: tuple[int, ...] = (1, 5, 10, 20, 50, 100)


def first_relevant_rank(hits: list[Hit], is_relevant: Callable[[Hit], bool]) -> int | None:
    """1-based rank of the first relevant hit, None when no hit is relevant."""
    for rank, hit in enumerate(hits, start=1):
        if is_relevant(hit):
            return rank
    return None


def summarize_ranks(ranks: list[int | None], depth: int, ks: tuple[int, ...] = RECALL_KS) -> dict[str, Any]:
    """recall@k for each k up to the retrieval depth (deeper k would only repeat recall@depth), and MRR."""
    n = len(ranks)
    out: dict[str, Any] = {"total": n}
    for k in ks:
        if k <= depth:
            out[f"recall@{k}"] = sum(1 for r in ranks if r is not None and r <= k) / n if n else 0.0
    out["mrr"] = sum(1.0 / r for r in ranks if r is not None) / n if n else 0.0
    return out


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def retrieval_metrics(
    results: list[RetrievalResult], examples: list[QAExample], doc_aliases: dict[str, str] | None = None
) -> dict[str, Any]:
    """Metrics for the questions in `examples`; each must have a result. A question without a gold
    document is left out of `by_document`, one without answers out of `by_answer`."""
    aliases = doc_aliases or {}
    by_id = {r.id: r for r in results}
    missing = [e.id for e in examples if e.id not in by_id]
    if missing:
        raise InputError(f"{len(missing)} question(s) have no retrieval result, e.g. {missing[:3]}")
    depth = max((len(r.passages) for r in results), default=0)
    doc_ranks: list[int | None] = []
    answer_ranks: list[int | None] = []
    for example in examples:
        hits = by_id[example.id].passages
        if example.document_id:
            gold = aliases.get(example.document_id, example.document_id)
            doc_ranks.append(
                first_relevant_rank(
                    hits, lambda h, gold=gold: aliases.get(h.document_id, h.document_id) == gold
                )
            )
        answers = [_nfc(a) for a in example.answers["text"] if a.strip()]
        if answers:
            answer_ranks.append(
                first_relevant_rank(hits, lambda h, answers=answers: any(a in _nfc(h.text) for a in answers))
            )
    return {
        "questions": len(examples),
        "depth": depth,
        "by_document": summarize_ranks(doc_ranks, depth),
        "by_answer": summarize_ranks(answer_ranks, depth),
    }


def plot_recall_curves(metrics_by_name: dict[str, dict[str, Any]], path: str | Path) -> Path:
    """One recall@k chart for several retrievers: solid = gold document, dashed = answer in passage."""
    from odqa.reports import png_figure

    with png_figure(path, figsize=(7, 4.5), dpi=120) as (_, ax):
        _draw_recall_curves(ax, metrics_by_name)
    return Path(path)


def _draw_recall_curves(ax, metrics_by_name: dict[str, dict[str, Any]]) -> None:
    all_ks: set[int] = set()
    lowest = 1.0
    for i, (name, metrics) in enumerate(metrics_by_name.items()):
        color = f"C{i % 10}"
        for key, style, label in (("by_document", "-", "gold doc"), ("by_answer", "--", "answer")):
            section = metrics.get(key, {})
            points = sorted((int(k.split("@")[1]), v) for k, v in section.items() if k.startswith("recall@"))
            if section.get("total") and points:
                ks, values = zip(*points, strict=True)
                ax.plot(ks, values, style, marker="o", color=color, label=f"{name} ({label})")
                all_ks.update(ks)
                lowest = min(lowest, *values)
    ax.set_xscale("log")
    ax.set_xticks(sorted(all_ks), [str(k) for k in sorted(all_ks)])
    ax.minorticks_off()
    ax.set_xlabel("k (passages retrieved)")
    ax.set_ylabel("recall@k")
    ax.set_ylim(max(0.0, (lowest - 0.05) // 0.05 * 0.05), 1.005)  # zoomed in: the differences are near 1
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title("Retrieval recall@k")


def evaluate_retrieval(
    retrieved_path: str | Path,
    qa_path: str | Path,
    out_dir: str | Path,
    doc_aliases_path: str | Path | None = None,
) -> dict[str, Any]:
    """Writes retrieval_metrics.json and recall_at_k.png into out_dir, each atomically, next to what
    the folder already holds (the pipeline keeps retrieved.jsonl there); returns the metrics."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError("exists and is not a folder; give a folder for the retrieval metrics", path=out_dir)
    metrics = retrieval_metrics(
        load_retrieved(retrieved_path),
        load_qa(qa_path, open_domain=True).examples,
        load_doc_aliases(doc_aliases_path),
    )
    write_json(out_dir / RETRIEVAL_METRICS_FILE, metrics)
    plot_recall_curves({Path(retrieved_path).stem: metrics}, out_dir / RECALL_PLOT_FILE)
    logger.info("retrieval metrics: %s", metrics)
    return metrics
