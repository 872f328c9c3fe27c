"""Ensemble stage: combine several readers' n-best lists into one predictions.json + nbest.json.

Candidates are merged by normalised answer text, because two readers (or two passages) that propose
"세종대왕" with different offsets are voting for the same answer. Soft methods score every merged
candidate from each member's list; `hard_vote` counts each member's top-1 answer.

`log_prob_sum` scores an answer by sum_i w_i * log p_i(answer), p_i a softmax over member i's n-best
ranking scores in logs (`log_score`: what predict ranked by, retrieval probability included), a
weighted product of the members' probabilities, in logs. `log_prob_sum` used to be called
`prob_product`, which is also the name of the reader's different start x end probability score; the
old spelling is accepted until 0.2, with a warning. `logit_sum` adds the members' log scores themselves.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

from pydantic import Field, field_validator

from odqa.errors import InputError
from odqa.evaluation.metrics import AnswerPickFields, answer_key
from odqa.io import atomic_dir, check_output_dir, read_json, write_json
from odqa.schema import ENSEMBLE_REPORT_FILE, NBEST_FILE, PREDICTIONS_FILE

logger = logging.getLogger(__name__)

Method = Literal["log_prob_sum", "logit_sum", "rank_average", "hard_vote"]
METHODS = get_args(Method)


class EnsembleConfig(AnswerPickFields):
    renamed_values = {"method": {"prob_product": "log_prob_sum"}}

    method: Method = Field(
        "log_prob_sum",
        description="log_prob_sum: weighted sum of the members' log-probabilities; logit_sum: weighted sum "
        "of the members' ranking scores in logs (log_score; start+end logits in older n-best files); "
        "rank_average: weighted mean rank; hard_vote: weighted top-1 votes",
    )
    weights: list[float] | None = Field(
        None,
        description="one positive finite weight per member, in the order of the n-best files (none: equal)",
    )
    n_best: int = Field(20, ge=1, description="candidates read from each member and written per question")
    floor_prob: float = Field(
        1e-4,
        gt=0,
        lt=1,
        description="probability a member gives an answer missing from its n-best list (log_prob_sum)",
    )

    @field_validator("weights")
    @classmethod
    def _finite_positive(cls, weights: list[float] | None) -> list[float] | None:
        """A NaN or infinite weight would write NaN scores into nbest.json; zero or less means nothing."""
        for w in weights or []:
            if not math.isfinite(w) or w <= 0:
                raise ValueError(f"each weight must be a positive finite number, got {w}")
        return weights


ENSEMBLE_KIND = "ensemble"  # the output kind of the folder ensemble() writes (odqa.io.atomic_dir)


def _candidate_logit(entry: dict) -> float:
    """The member's own ranking score in logs (predict's `log_score`: with the retrieval probability in
    it); start + end logit for n-best files written before it existed. Start + end alone dropped the
    retrieval probability: make run's one-reader ensemble turned the reader's EM 12.59 / F1 28.50 into
    12.07 / 27.80."""
    if "log_score" in entry:
        return float(entry["log_score"])
    return float(entry.get("start_logit", 0.0)) + float(entry.get("end_logit", 0.0))


@dataclass
class _MemberView:
    """One member's candidates for one question, merged by answer key (best entry kept as representative)."""

    prob: dict[str, float]  # softmax over the member's n-best logits, summed per key
    logit: dict[str, float]  # best logit sum per key
    rank: dict[str, int]  # 1-based rank of the key's first appearance
    entry: dict[str, dict]  # the best-ranked entry per key
    top: str | None
    length: int


def _member_view(entries: list[dict], n_best: int) -> _MemberView:
    entries = [e for e in entries[:n_best] if str(e.get("text", "")).strip()]
    logits = [_candidate_logit(e) for e in entries]
    peak = max(logits, default=0.0)
    exps = [math.exp(x - peak) for x in logits]
    total = sum(exps) or 1.0
    view = _MemberView({}, {}, {}, {}, None, len(entries))
    for entry, logit, weight in zip(entries, logits, exps, strict=True):
        k = answer_key(entry["text"])
        if not k:
            continue
        view.prob[k] = view.prob.get(k, 0.0) + weight / total
        if k not in view.entry:
            view.entry[k] = entry
            view.logit[k] = logit
            view.rank[k] = len(view.rank) + 1
            if view.top is None:
                view.top = k
    return view


def _scores(views: list[_MemberView], weights: list[float], config: EnsembleConfig) -> dict[str, float]:
    keys = list(dict.fromkeys(k for v in views for k in v.entry))
    scores: dict[str, float] = {}
    for k in keys:
        if config.method == "log_prob_sum":
            # weighted sum of log-probabilities == log of the weighted product
            scores[k] = sum(
                w * math.log(v.prob.get(k, config.floor_prob)) for v, w in zip(views, weights, strict=True)
            )
        elif config.method == "logit_sum":
            # a member that did not propose k contributes its weakest logit
            scores[k] = sum(
                w * v.logit.get(k, min(v.logit.values(), default=0.0))
                for v, w in zip(views, weights, strict=True)
            )
        elif config.method == "rank_average":
            # lower average rank is better; a missing answer ranks just after the member's list
            mean_rank = sum(w * v.rank.get(k, len(v.rank) + 1) for v, w in zip(views, weights, strict=True))
            scores[k] = -mean_rank / sum(weights)
        else:  # hard_vote: weighted top-1 votes (ties are broken in _rank)
            scores[k] = sum(w for v, w in zip(views, weights, strict=True) if v.top == k)
    return scores


def _support(keys, views: list[_MemberView], weights: list[float]) -> dict[str, float]:
    """Each answer's probability summed over the members, by weight: the tie-break of `_rank` and the
    distribution `answer_pick` expects F1 under."""
    return {k: sum(w * v.prob.get(k, 0.0) for v, w in zip(views, weights, strict=True)) for k in keys}


def _log(p: float) -> float:
    return math.log(p) if p > 0 else -math.inf


def _rank(scores: dict[str, float], support: dict[str, float]) -> list[str]:
    """Best first; equal scores fall back to the weighted summed probability, then first appearance."""
    return sorted(scores, key=lambda k: (scores[k], support[k]), reverse=True)


_SCORE_FIELDS = ("log_score", "start_logit", "end_logit")  # what _candidate_logit reads


def _read_nbest(path: Path) -> dict[str, list[dict]]:
    data = read_json(path)
    if not isinstance(data, dict):
        raise InputError("nbest file must be a JSON object {question id: [candidates]}", path=path)
    for qid, entries in data.items():
        if not isinstance(entries, list) or not all(isinstance(e, dict) and "text" in e for e in entries):
            raise InputError("each n-best entry must be an object with a 'text' field", path=path, record=qid)
        for e in entries:  # what combine reads: the text it normalises, the scores it ranks by
            if not isinstance(e["text"], str):
                raise InputError(f"n-best 'text' must be a string, got {e['text']!r}", path=path, record=qid)
            for field in _SCORE_FIELDS:
                value = e.get(field, 0.0)
                if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                    raise InputError(
                        f"n-best {field!r} must be a finite number, got {value!r}", path=path, record=qid
                    )
    return data


def combine(nbests: list[dict[str, list[dict]]], config: EnsembleConfig) -> tuple[dict, dict]:
    """In-memory ensemble: (predictions {id: text}, nbest {id: [entries]}) from member n-best dicts."""
    if not nbests:
        raise InputError("an ensemble needs at least one member")
    weights = list(config.weights) if config.weights is not None else [1.0] * len(nbests)
    if len(weights) != len(nbests):
        raise InputError(f"{len(weights)} weights for {len(nbests)} ensemble members")
    if any(not math.isfinite(w) or w <= 0 for w in weights):
        raise InputError("ensemble weights must be positive finite numbers")
    qids = list(dict.fromkeys(q for nb in nbests for q in nb))
    predictions: dict[str, str] = {}
    merged_nbest: dict[str, list[dict]] = {}
    for qid in qids:
        present = [(nb[qid], w) for nb, w in zip(nbests, weights, strict=True) if qid in nb]
        views = [_member_view(entries, config.n_best) for entries, _ in present]
        member_weights = [w for _, w in present]
        scores = _scores(views, member_weights, config)
        support = _support(scores, views, member_weights)
        ranked = _rank(scores, support)[: config.n_best]
        entries = []
        for k in ranked:
            # representative: the entry of the heaviest member that proposed k (first member on ties)
            rep = max(
                ((v.entry[k], w) for v, w in zip(views, member_weights, strict=True) if k in v.entry),
                key=lambda ew: ew[1],
            )[0]
            entry = dict(rep)
            entry["score"] = scores[k]
            entry["votes"] = sum(1 for v in views if k in v.entry)
            entries.append(entry)
        # The pick weighs the answers by their summed probability (its scale cancels in the softmax).
        entries = config.pick_first(entries, [_log(support[k]) for k in ranked])
        merged_nbest[qid] = entries
        predictions[qid] = entries[0]["text"] if entries else ""
    return predictions, merged_nbest


def ensemble(config: EnsembleConfig, nbest_paths: list, out_dir, force: bool = False) -> Path:
    """Ensemble member nbest.json files into out_dir/predictions.json and out_dir/nbest.json (out_dir:
    a new folder or an earlier ensemble; `force` replaces any other folder)."""
    check_output_dir(out_dir, ENSEMBLE_KIND, force)
    paths = [Path(p) for p in nbest_paths]
    paths = [p / NBEST_FILE if p.is_dir() else p for p in paths]
    nbests = [_read_nbest(p) for p in paths]
    if config.weights is not None and len(config.weights) != len(nbests):
        raise InputError(f"--weights: {len(config.weights)} weights for {len(nbests)} ensemble members")
    member_warnings(nbests, paths)
    predictions, merged = combine(nbests, config)
    out_dir = Path(out_dir)
    agreement = _top1_agreement(nbests)
    with atomic_dir(out_dir, kind=ENSEMBLE_KIND, force=force) as tmp:
        write_json(tmp / NBEST_FILE, merged)
        write_json(tmp / PREDICTIONS_FILE, predictions)
        write_json(
            tmp / ENSEMBLE_REPORT_FILE,
            {"config": config.to_dict(), "members": [str(p) for p in paths], "top1_agreement": agreement},
        )
    logger.info(
        "ensembled %d members (%s) over %d questions; members agree on top-1 for %.1f%%",
        len(paths),
        config.method,
        len(predictions),
        100 * agreement,
    )
    return out_dir


def member_warnings(nbests: list[dict[str, list[dict]]], paths: list[Path]) -> list[str]:
    """Warn (and return the warnings) about members that cannot vote together: an empty member, or
    members answering other questions than the rest (an ensemble of disjoint files is a concatenation)."""
    warnings = []
    for nb, path in zip(nbests, paths, strict=True):
        if not nb:
            warnings.append(f"{path}: empty n-best file: this member votes on no question")
    filled = [(set(nb), path) for nb, path in zip(nbests, paths, strict=True) if nb]
    if len(filled) > 1:
        union = set().union(*(ids for ids, _ in filled))
        for ids, path in filled:
            if len(ids) < len(union):
                share = len(ids) / len(union)
                warnings.append(
                    f"{path}: answers {len(ids)} of the {len(union)} questions of the ensemble ({share:.0%}); "
                    "the other questions get fewer votes"
                )
    for text in warnings:
        logger.warning("%s", text)
    return warnings


def _top1_agreement(nbests: list[dict[str, list[dict]]]) -> float:
    """Share of questions where every member's top-1 answer normalises to the same text."""
    qids = set.intersection(*(set(nb) for nb in nbests)) if nbests else set()
    if not qids:
        return 0.0
    same = sum(1 for q in qids if len({answer_key(nb[q][0]["text"]) if nb[q] else "" for nb in nbests}) == 1)
    return same / len(qids)
