"""Ensemble voting on hand-made n-best lists: each method picks the answer its rule implies."""

from __future__ import annotations

import json
import math

import pytest

from odqa.ensemble import EnsembleConfig, combine, ensemble
from odqa.errors import InputError


def cand(text: str, logit: float) -> dict:
    return {
        "text": text,
        "score": logit,
        "start_logit": logit / 2,
        "end_logit": logit / 2,
        "passage_id": f"p-{text}",
    }


def winner(members: list[list[dict]], method: str, weights=None) -> str:
    """The method's own first answer (answer_pick "top": the methods' ranking, not the pick after it)."""
    config = EnsembleConfig(method=method, weights=weights, answer_pick="top")
    predictions, _ = combine([{"q": m} for m in members], config)
    return predictions["q"]


def test_hard_vote_majority_and_weights_decide():
    a = [cand("서울", 10), cand("부산", 1)]
    b = [cand("서울", 10), cand("부산", 1)]
    c = [cand("부산", 10), cand("서울", 1)]
    assert winner([a, b, c], "hard_vote") == "서울"
    assert winner([a, b, c], "hard_vote", weights=[1, 1, 3]) == "부산"


def test_hard_vote_tie_goes_to_higher_summed_probability():
    a = [cand("서울", 1.0), cand("부산", 0.5)]  # weak preference for 서울
    b = [cand("부산", 10), cand("서울", 0)]  # strong preference for 부산
    assert winner([a, b], "hard_vote") == "부산"
    assert winner([b, a], "hard_vote") == "부산"


def test_rank_average_prefers_consistently_high_answer():
    a = [cand("x", 3), cand("y", 2), cand("z", 1)]
    b = [cand("y", 3), cand("z", 2), cand("x", 1)]
    c = [cand("z", 3), cand("y", 2), cand("x", 1)]
    assert winner([a, b, c], "rank_average") == "y"
    assert winner([a, b, c], "rank_average", weights=[5, 1, 1]) == "x"


def test_logit_sum_adds_raw_logits():
    a = [cand("서울", 10), cand("부산", 9)]
    b = [cand("부산", 8), cand("서울", 7.5)]
    assert winner([a, b], "logit_sum") == "서울"
    assert winner([a, b], "logit_sum", weights=[1, 3]) == "부산"


def test_log_prob_sum_punishes_answers_a_member_finds_unlikely():
    a = [cand("서울", 10), cand("부산", 9.5)]
    b = [cand("부산", 10), cand("서울", 0)]
    assert winner([a, b], "log_prob_sum") == "부산"
    # an answer missing from a member's list gets the floor probability
    c = [cand("대구", 10)]
    assert winner([a, c], "log_prob_sum") == "대구"  # certain in c vs 0.62 in a, both floored once
    assert winner([a, c], "log_prob_sum", weights=[4, 1]) == "서울"


def test_same_answer_text_is_merged_before_voting():
    # two passages propose 서울: summed probability beats the single best-scored 부산
    member = [cand("부산", 5), cand("서울", 4.9), cand("서울 ", 4.9)]
    assert winner([member], "log_prob_sum") == "서울"
    assert winner([member], "logit_sum") == "부산"
    _, nbest = combine([{"q": member}], EnsembleConfig(method="log_prob_sum"))
    assert [e["text"].strip() for e in nbest["q"]] == ["서울", "부산"]


def test_ensemble_files_roundtrip_and_missing_questions(tmp_path):
    a = {"q1": [cand("서울", 5)], "q2": [cand("1443년", 3), cand("1446년", 2)]}
    b = {"q1": [cand("서울", 4), cand("부산", 1)]}
    for name, data in (("a.json", a), ("b.json", b)):
        (tmp_path / name).write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    out = ensemble(
        EnsembleConfig(method="log_prob_sum", n_best=5),
        [tmp_path / "a.json", tmp_path / "b.json"],
        tmp_path / "out",
    )
    predictions = json.loads((out / "predictions.json").read_text(encoding="utf-8"))
    nbest = json.loads((out / "nbest.json").read_text(encoding="utf-8"))
    assert predictions == {"q1": "서울", "q2": "1443년"}
    assert nbest["q1"][0]["votes"] == 2 and nbest["q1"][0]["passage_id"] == "p-서울"
    assert nbest["q1"][0]["score"] >= nbest["q1"][1]["score"]
    report = json.loads((out / "ensemble.json").read_text(encoding="utf-8"))
    assert report["top1_agreement"] == 1.0


def test_bad_members_are_rejected(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"q1": [{"score": 1}]}), encoding="utf-8")
    with pytest.raises(InputError, match="record q1"):
        ensemble(EnsembleConfig(), [bad], tmp_path / "out")
    with pytest.raises(InputError, match="weights"):
        combine([{"q": []}, {"q": []}], EnsembleConfig(weights=[1.0]))
    with pytest.raises(InputError, match="method: must be one of .*got 'average'"):
        EnsembleConfig(method="average")
    assert not (tmp_path / "out").exists()


def test_ensemble_cli(tmp_path, run_cli):
    for name, data in (
        ("a.json", {"q": [cand("서울", 5), cand("부산", 1)]}),
        ("b.json", {"q": [cand("부산", 9)]}),
    ):
        (tmp_path / name).write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    members = [tmp_path / "a.json", tmp_path / "b.json"]
    rc, _, _ = run_cli(["ensemble", "--nbest", *members, "--out", tmp_path / "o", "--method", "hard_vote", "--weights", "1", "2"], modules=("augment",))  # fmt: skip
    assert rc == 0
    assert json.loads((tmp_path / "o" / "predictions.json").read_text(encoding="utf-8")) == {"q": "부산"}
    rc, _, err = run_cli(["ensemble", "--nbest", *members, "--out", tmp_path / "o", "--weights", "1"], modules=("augment",))  # fmt: skip
    assert rc == 2 and "weights" in err


def test_old_method_name_prob_product_is_log_prob_sum_with_a_warning(tmp_path, run_cli, capsys):
    """The ensemble's method was called prob_product, the reader's different start x end score."""
    a = [cand("서울", 10), cand("부산", 9.5)]
    b = [cand("부산", 10), cand("서울", 0)]
    assert EnsembleConfig(method="prob_product").method == "log_prob_sum"
    assert "odqa: method=prob_product is deprecated, use method=log_prob_sum" in capsys.readouterr().err
    assert winner([a, b], "prob_product") == winner([a, b], "log_prob_sum") == "부산"
    for name, data in (("a.json", {"q": a}), ("b.json", {"q": b})):
        (tmp_path / name).write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    members = [tmp_path / "a.json", tmp_path / "b.json"]
    rc, _, err = run_cli(["ensemble", "--nbest", *members, "--out", tmp_path / "o", "--method", "prob_product"], modules=("augment",))  # fmt: skip
    assert rc == 0 and err.count("deprecated") == 1
    assert json.loads((tmp_path / "o" / "ensemble.json").read_text())["config"]["method"] == "log_prob_sum"


def test_members_are_combined_by_their_own_ranking_score():
    """predict ranks by more than start + end logits (the retrieval probability): `log_score` carries that
    ranking, so an ensemble of one keeps the reader's answer; n-best files without it fall back to
    start + end logits."""
    near = {**cand("서울", 9), "log_score": -3.0}  # the reader's best: strong passage, slightly weaker span
    far = {**cand("부산", 10), "log_score": -5.0}  # a better span in a passage retrieval ranks low
    ranked_by_predict = [near, far]
    for method in ("log_prob_sum", "logit_sum"):
        assert winner([ranked_by_predict], method) == "서울"
        old = [{k: v for k, v in e.items() if k != "log_score"} for e in ranked_by_predict]
        assert winner([old], method) == "부산"
    _, nbest = combine([{"q": ranked_by_predict}], EnsembleConfig())
    assert nbest["q"][0]["score"] == pytest.approx(math.log(1 / (1 + math.exp(-2.0))))


def test_answer_pick_expected_f1_moves_the_shared_span_first_in_predictions_and_nbest():
    member = [cand("세종대왕", 1.0), cand("1443년 훈민정음", 0.9), cand("훈민정음", 0.9)]
    top, _ = combine([{"q": member}], EnsembleConfig(answer_pick="top"))
    predictions, nbest = combine([{"q": member}], EnsembleConfig())  # expected_f1 by default
    assert top["q"] == "세종대왕"
    assert predictions["q"] == nbest["q"][0]["text"] == "1443년 훈민정음"
    assert {e["text"] for e in nbest["q"]} == {c["text"] for c in member}  # reordered, nothing lost


def test_pick_temperature_keeps_a_clear_top_answer_and_one_weighs_the_whole_list():
    # 세종대왕 at logit 1 against two overlapping spans at 0.7: at the default temperature it stays first,
    # at 1 the two spans' shared F1 outweighs it (the pick of the earlier "expected_f1")
    member = [cand("세종대왕", 1.0), cand("1443년 훈민정음", 0.7), cand("훈민정음", 0.7)]
    sharp, _ = combine([{"q": member}], EnsembleConfig())
    flat, _ = combine([{"q": member}], EnsembleConfig(pick_temperature=1.0))
    assert sharp["q"] == "세종대왕"
    assert flat["q"] == "1443년 훈민정음"
