"""odqa.evaluation: KorQuAD / SQuAD EM and F1 on hand-computed cases, the evaluate stage, `odqa evaluate`."""

from __future__ import annotations

import json
import math

import pytest

from odqa.errors import InputError
from odqa.evaluation import (
    EvaluateConfig,
    evaluate,
    exact_match,
    f1,
    normalize_answer,
    question_scores,
    score,
)


@pytest.mark.parametrize(
    ("text", "korquad", "squad"),
    [
        ("《훈민정음》", "훈민정음", "《훈민정음》"),
        ("‘한양’ (漢陽)", "한양 漢陽", "‘한양’ 漢陽"),
        ('"The" <CPython>', "the cpython", "cpython"),
        ("  1,947  m. ", "1947 m", "1947 m"),
        ("〈a〉 an apple", "a an apple", "〈 〉 apple"),  # squad drops "a" between brackets
    ],
)
def test_normalize(text, korquad, squad):
    assert normalize_answer(text, "korquad") == korquad
    assert normalize_answer(text, "squad") == squad


# (prediction, gold, korquad EM, korquad F1, squad EM, squad F1), F1 worked out by hand
CASES = [
    ("세종은", "세종", False, 4 / 5, False, 0),  # particle: chars P=2/3 R=1
    ("《훈민정음》", "훈민정음", True, 1.0, False, 0),
    ("(1443년)", "1443년", True, 1.0, True, 1.0),
    ("", "세종", False, 0, False, 0),
    ("   ", "세종", False, 0, False, 0),
    ("The CPython", "CPython", False, 14 / 17, True, 1.0),  # chars: 7 common of 10 predicted
    ("노량해전", "노량 해전", False, 1.0, False, 0),  # spacing only
    ("1,947 m", "1947m", False, 1.0, False, 0),
    ("‘한양’", "한양", True, 1.0, False, 0),  # curly quotes are not ASCII punctuation
    ("1443년 훈민정음", "훈민정음", False, 8 / 13, False, 2 / 3),  # chars P=4/9 R=1; tokens P=1/2
    ("세종 세종", "세종", False, 2 / 3, False, 2 / 3),  # repeats count once each
]


@pytest.mark.parametrize(("pred", "gold", "k_em", "k_f1", "s_em", "s_f1"), CASES)
def test_hand_cases(pred, gold, k_em, k_f1, s_em, s_f1):
    assert exact_match(pred, gold, "korquad") is k_em
    assert f1(pred, gold, "korquad") == pytest.approx(k_f1, abs=1e-12)
    assert exact_match(pred, gold, "squad") is s_em
    assert f1(pred, gold, "squad") == pytest.approx(s_f1, abs=1e-12)


def test_best_gold_wins():
    assert question_scores("세종", ["세종대왕", "세종"]) == (True, 1.0)
    assert question_scores("세종대왕님", ["세종대왕", "세종"]) == (False, pytest.approx(8 / 9))


def test_score_counts_unanswered_as_zero():
    golds = [("a", ["훈민정음"]), ("b", ["세종"]), ("c", ["훈민정음"]), ("d", ["한양"])]
    predictions = {"a": "《훈민정음》", "b": "세종은", "c": "1443년 훈민정음", "z": "ignored"}
    result = score(golds, predictions, "korquad")
    assert result["total"] == 4
    assert result["exact_match"] == 25.0
    assert result["f1"] == pytest.approx(100 * (1 + 0.8 + 8 / 13) / 4)
    assert score([], {}, "korquad") == {"exact_match": 0.0, "f1": 0.0, "total": 0}


def test_unknown_metric():
    with pytest.raises(InputError, match="metric: must be one of .korquad. or .squad., got .bleu."):
        EvaluateConfig(metric="bleu")
    with pytest.raises(ValueError):
        normalize_answer("x", "bleu")


def _write(path, obj):
    path.write_text(json.dumps(obj, ensure_ascii=False), encoding="utf-8")
    return path


def _retrieved(path, hits_by_id):
    lines = []
    for qid, doc_ids in hits_by_id.items():
        hits = [
            {"passage_id": f"{d}-0", "document_id": d, "title": "", "text": "", "score": 1.0 / (r + 1)}
            for r, d in enumerate(doc_ids)
        ]
        lines.append(json.dumps({"id": qid, "question": "", "passages": hits}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_evaluate_stage_with_breakdown(tiny_qa, tmp_path):
    # gold docs: tiny-0,1 -> "0"; tiny-2,3 -> "1"; tiny-4,5 -> "2"; tiny-6 -> "3"; tiny-7,8,9 -> "7"
    predictions = _write(
        tmp_path / "predictions.json",
        {
            "tiny-0": "한양",
            "tiny-1": "1394년에",
            "tiny-2": "세종",
            "tiny-4": "13척",
            "tiny-6": "한라산",
            "tiny-7": "귀도 반 로섬",
        },
    )
    retrieved = _retrieved(
        tmp_path / "retrieved.jsonl",
        {
            "tiny-0": ["0", "1"],
            "tiny-1": ["1", "0"],  # gold at rank 2
            "tiny-2": ["4"],  # a dropped duplicate of the gold "1"
            "tiny-4": ["7"],
            "tiny-6": ["3"],
            "tiny-7": ["7"],
        },  # the rest are missing from retrieved.jsonl
    )
    aliases = _write(tmp_path / "doc_aliases.json", {"4": "1", "5": "2"})
    out = tmp_path / "out" / "metrics.json"
    metrics = evaluate(EvaluateConfig(), tiny_qa, predictions, out, retrieved, aliases)
    assert json.loads(out.read_text()) == metrics
    # EM: tiny-0, 2, 4, 7 -> 4/10; F1 adds tiny-1 at 2*(5/6*1)/(5/6+1) = 10/11
    assert (metrics["total"], metrics["answered"], metrics["exact_match"]) == (10, 6, 40.0)
    assert metrics["f1"] == pytest.approx(100 * (4 + 10 / 11) / 10)
    hit, miss = metrics["breakdown"]["gold_retrieved"], metrics["breakdown"]["gold_not_retrieved"]
    assert (hit["total"], hit["exact_match"]) == (5, 60.0)  # tiny-0, 1, 2, 6, 7
    assert (miss["total"], miss["exact_match"]) == (5, 20.0)  # tiny-4 right without its gold document
    top1 = evaluate(EvaluateConfig(top_k=1), tiny_qa, predictions, tmp_path / "m1.json", retrieved, aliases)
    assert top1["breakdown"]["gold_retrieved"]["total"] == 4 and top1["breakdown"]["top_k"] == 1
    no_alias = evaluate(EvaluateConfig(), tiny_qa, predictions, tmp_path / "m2.json", retrieved)
    assert no_alias["breakdown"]["gold_retrieved"]["total"] == 4
    assert "breakdown" not in evaluate(
        EvaluateConfig(metric="squad"), tiny_qa, predictions, tmp_path / "m3.json"
    )


def test_evaluate_real_korquad_gold_is_perfect(korquad_path, tmp_path):
    from odqa.data import load_qa

    examples = load_qa(korquad_path).examples
    predictions = _write(tmp_path / "p.json", {ex.id: ex.answers["text"][0] for ex in examples})
    metrics = evaluate(EvaluateConfig(), korquad_path, predictions, tmp_path / "m.json")
    assert (metrics["exact_match"], metrics["f1"], metrics["total"]) == (100.0, 100.0, 5774)


@pytest.mark.parametrize(
    ("predictions", "match"),
    [
        (["세종"], "JSON object"),
        ({"tiny-0": None}, r"\[record tiny-0\].*string"),
        ({"tiny-0": ["a"]}, "string"),
    ],
)
def test_bad_predictions(tiny_qa, tmp_path, predictions, match):
    with pytest.raises(InputError, match=match):
        evaluate(EvaluateConfig(), tiny_qa, _write(tmp_path / "p.json", predictions), tmp_path / "m.json")
    assert not (tmp_path / "m.json").exists()


def test_gold_without_answers_or_document(tmp_path):
    qa = tmp_path / "qa.jsonl"
    qa.write_text(json.dumps({"id": "t1", "question": "서울의 옛 이름은?"}) + "\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"\[record t1\].*without gold answers"):
        evaluate(EvaluateConfig(), qa, _write(tmp_path / "p.json", {}), tmp_path / "m.json")
    qa.write_text(
        json.dumps(
            {
                "id": "t1",
                "question": "q",
                "context": "한양",
                "answers": {"answer_start": [0], "text": ["한양"]},
            }
        )
        + "\n",
        encoding="utf-8",
    )
    retrieved = _retrieved(tmp_path / "r.jsonl", {"t1": ["0"]})
    with pytest.raises(InputError, match="no document_id"):
        evaluate(EvaluateConfig(), qa, _write(tmp_path / "p.json", {}), tmp_path / "m.json", retrieved)


def test_cli_evaluate_last_line_is_json(run_cli, tiny_qa, tmp_path):
    predictions = _write(tmp_path / "predictions.json", {"tiny-0": "한양", "tiny-2": "세종은"})
    retrieved = _retrieved(tmp_path / "retrieved.jsonl", {"tiny-0": ["0"], "tiny-2": ["3"]})
    rc, stdout, _ = run_cli(
        [
            "evaluate",
            "--data",
            tiny_qa,
            "--predictions",
            predictions,
            "--metric",
            "korquad",
            "--retrieved",
            retrieved,
        ]
    )
    assert rc == 0
    metrics = json.loads(stdout.strip().splitlines()[-1])
    assert metrics["exact_match"] == 10.0 and metrics["f1"] == pytest.approx(18.0) and metrics["total"] == 10
    assert metrics["breakdown"]["gold_retrieved"] == {"exact_match": 100.0, "f1": 100.0, "total": 1}
    assert json.loads((tmp_path / "metrics.json").read_text()) == metrics  # default --out beside predictions


def test_cli_evaluate_bad_input(run_cli, tiny_qa, tmp_path):
    broken = tmp_path / "predictions.json"
    broken.write_bytes('{"tiny-0": "한양"}'.encode("cp949"))
    out = tmp_path / "metrics.json"
    rc, stdout, stderr = run_cli(["evaluate", "--data", tiny_qa, "--predictions", broken, "--out", out])
    assert rc == 2 and stdout == ""
    assert stderr.startswith("odqa evaluate: error:") and "not UTF-8" in stderr and stderr.count("\n") == 1
    assert not out.exists()


def test_question_scores_file_adds_up_to_the_metrics(tiny_qa, tmp_path):
    """question_scores.json holds every gold question (unanswered ones at 0) and its means are metrics.json."""
    from odqa.evaluation import load_question_scores

    predictions = _write(
        tmp_path / "predictions.json", {"tiny-0": "한양", "tiny-1": "1394년에", "tiny-2": "세종은"}
    )
    scores_path = tmp_path / "question_scores.json"
    metrics = evaluate(
        EvaluateConfig(), tiny_qa, predictions, tmp_path / "m.json", question_scores_path=scores_path
    )
    scores = load_question_scores(scores_path)
    assert len(scores) == metrics["total"] == 10
    assert scores["tiny-0"] == {"exact_match": 100.0, "f1": 100.0}
    assert scores["tiny-2"]["exact_match"] == 0.0 and scores["tiny-2"]["f1"] == pytest.approx(80.0)
    assert scores["tiny-9"] == {"exact_match": 0.0, "f1": 0.0}  # no prediction
    assert sum(s["exact_match"] for s in scores.values()) / 10 == pytest.approx(metrics["exact_match"])
    assert sum(s["f1"] for s in scores.values()) / 10 == pytest.approx(metrics["f1"])


def test_cli_evaluate_writes_question_scores(run_cli, tiny_qa, tmp_path):
    predictions = _write(tmp_path / "predictions.json", {"tiny-0": "한양"})
    rc, _, _ = run_cli(
        [
            "evaluate",
            "--data",
            tiny_qa,
            "--predictions",
            predictions,
            "--question-scores",
            tmp_path / "q.json",
        ]
    )
    assert rc == 0
    assert json.loads((tmp_path / "q.json").read_text())["questions"]["tiny-0"]["exact_match"] == 100.0


def test_bad_question_scores_file_is_one_input_error(tmp_path):
    from odqa.evaluation import load_question_scores

    path = _write(tmp_path / "q.json", {"questions": {"a": {"exact_match": "yes", "f1": 1}}})
    with pytest.raises(InputError, match="numeric exact_match"):
        load_question_scores(path)


def test_expected_f1_pick_prefers_the_span_the_near_ties_share():
    from odqa.evaluation import expected_f1_pick
    from odqa.evaluation.metrics import pick_first

    # The top span (0.4) shares nothing with the other two (0.3 each), which overlap each other:
    # "1443년 훈민정음" scores F1 against both, so its expected F1 beats the top one's 0.4.
    texts = ["세종대왕", "1443년 훈민정음", "훈민정음"]
    probs = [0.4, 0.3, 0.3]
    assert expected_f1_pick(texts, probs) == 1
    assert expected_f1_pick(texts, [0.8, 0.1, 0.1]) == 0  # a confident top answer stays
    assert expected_f1_pick(["가", "가"], [0.5, 0.5]) == 0  # ties keep the higher-ranked one
    entries = [{"text": t} for t in texts]
    moved = [texts[1], texts[0], texts[2]]
    logs = [math.log(p) + 3.0 for p in probs]  # log scores at any offset: the pick softmaxes them
    assert [e["text"] for e in pick_first(entries, logs, "expected_f1", temperature=1.0)] == moved
    assert pick_first(entries, logs, "top", temperature=1.0) == entries


def test_pick_temperature_weighs_only_near_ties_against_each_other():
    from odqa.evaluation.metrics import DEFAULT_PICK_TEMPERATURE, pick_first, pick_weights

    texts = ["세종대왕", "1443년 훈민정음", "훈민정음"]
    entries = [{"text": t} for t in texts]

    def logs(probs):
        return [math.log(p) for p in probs]

    # 0.4 against 0.3 + 0.3: at the default temperature the top answer is clear enough to stay ...
    assert DEFAULT_PICK_TEMPERATURE < 1
    assert pick_first(entries, logs([0.4, 0.3, 0.3]), "expected_f1") == entries
    # ... while a near-tie still goes to the span the others share
    assert pick_first(entries, logs([0.34, 0.33, 0.33]), "expected_f1")[0]["text"] == texts[1]
    sharp = pick_weights(logs([0.4, 0.3, 0.3]), 0.25)  # the probabilities to the 4th power, renormalised
    assert sharp[0] == pytest.approx(0.4**4 / (0.4**4 + 2 * 0.3**4)) and sum(sharp) == pytest.approx(1.0)
    assert pick_weights(logs([0.5, 0.25, 0.25]), 1.0) == pytest.approx([0.5, 0.25, 0.25])
    assert pick_weights([0.0, -math.inf], 0.25) == [1.0, 0.0]  # no probability weighs 0, no NaN
    assert pick_weights([-math.inf, -math.inf], 0.25) == [0.0, 0.0]
