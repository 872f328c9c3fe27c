"""Reader training and prediction end to end on a real KorQuAD slice, and loading a saved HF checkpoint."""

from __future__ import annotations

import json
import math

import pytest
import torch
from transformers import (
    AutoConfig,
    AutoModelForQuestionAnswering,
    AutoTokenizer,
    DistilBertConfig,
    DistilBertForQuestionAnswering,
)

from odqa.cli import main
from odqa.data import load_qa, write_qa
from odqa.evaluation import score
from odqa.io import read_json, write_jsonl
from odqa.reader.config import READER_CONFIG_FILE, PredictConfig, ReaderTrainConfig
from odqa.reader.features import ReaderSettings
from odqa.reader.predict import Reader, predict, results_from_gold
from odqa.reader.train import mask_context, train_reader, weighted_span_loss
from odqa.settings import korquad_dev_path
from odqa.text.wordpiece import train_wordpiece_tokenizer

FAMILIES = (
    "bert",
    "roberta-bert-tokenizer",
    "xlm-roberta",
    "electra",
)  # tests/reader/conftest.py builds them

TINY = dict(
    hidden_size=64, num_layers=1, num_heads=2, vocab_size=3000, max_length=128, doc_stride=48, num_threads=2
)


@pytest.fixture(scope="module")
def korquad_slice(tmp_path_factory):
    """The questions of the first paragraphs of KorQuAD dev (real data), as qa.jsonl."""
    examples = load_qa(korquad_dev_path()).examples
    contexts = list(dict.fromkeys(ex.context for ex in examples))[:12]
    chosen = [ex for ex in examples if ex.context in set(contexts)]
    path = tmp_path_factory.mktemp("kq") / "qa.jsonl"
    write_qa(path, chosen)
    return path, chosen


def _f1(reader: Reader, examples) -> float:
    predictions, _ = reader.predict(results_from_gold(examples), PredictConfig(batch_size=32))
    return score([(ex.id, ex.answers["text"]) for ex in examples], predictions)["f1"]


@pytest.mark.integration
def test_training_beats_untrained_and_writes_a_loadable_model(korquad_slice, tmp_path):
    qa_path, examples = korquad_slice
    config = ReaderTrainConfig(
        **TINY, epochs=30, max_steps=100, batch_size=16, learning_rate=3e-3, log_every=10
    )
    out = train_reader(config, qa_path, tmp_path / "model")
    saved = read_json(out / READER_CONFIG_FILE)
    training = saved["training"]
    assert (saved["max_length"], saved["doc_stride"], saved["title_prefix"]) == (128, 48, False)
    assert training["steps"] == 100 and training["tokens_per_second"] > 0
    assert training["final_loss"] < 0.6 * training["first_loss"]
    assert (out / "training_loss.png").stat().st_size > 0

    reader = Reader.load(out)
    untrained = Reader(
        AutoModelForQuestionAnswering.from_config(AutoConfig.from_pretrained(str(out))),
        reader.tokenizer,
        ReaderSettings(max_length=128, doc_stride=48),
    )
    trained_f1, untrained_f1 = _f1(reader, examples), _f1(untrained, examples)
    assert trained_f1 > untrained_f1 + 20, (trained_f1, untrained_f1)

    # predict() over a retrieved file: each question reads its gold passage and a distractor.
    results = results_from_gold(examples[:20])
    for r in results:
        other = next(ex for ex in examples if ex.context != r.passages[0].text)
        r.passages.append(results_from_gold([other])[0].passages[0])
        r.passages[1].score = 0.5
    retrieved = tmp_path / "retrieved.jsonl"
    write_jsonl(retrieved, [r.to_dict() for r in results])
    result = predict(PredictConfig(n_best=5), out, retrieved, tmp_path / "pred")
    predictions, nbest = read_json(result.predictions_path), read_json(result.nbest_path)
    assert set(predictions) == {r.id for r in results} and result.questions == 20
    for r in results:
        entries = nbest[r.id]
        assert 0 < len(entries) <= 5 and entries[0]["text"] == predictions[r.id]
        assert [e["score"] for e in entries] == sorted((e["score"] for e in entries), reverse=True)
        texts = {p.passage_id: p.text for p in r.passages}
        assert all(e["text"] in texts[e["passage_id"]] for e in entries)


@pytest.mark.integration
def test_same_seed_gives_same_model(korquad_slice, tmp_path):
    """Training is deterministic for a given tokenizer. (The WordPiece trainer of `tokenizers` breaks
    frequency ties in hash order, so a vocabulary learned from scratch can differ between runs.)"""
    qa_path, _ = korquad_slice
    start = train_reader(ReaderTrainConfig(**TINY, max_steps=1), qa_path, tmp_path / "start")
    config = ReaderTrainConfig(
        **TINY, reader_model=str(start), max_steps=4, batch_size=8, shuffle=False, title_prefix=True
    )
    a = train_reader(config, qa_path, tmp_path / "a")
    b = train_reader(config, qa_path, tmp_path / "b")
    wa = AutoModelForQuestionAnswering.from_pretrained(str(a)).state_dict()
    wb = AutoModelForQuestionAnswering.from_pretrained(str(b)).state_dict()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not torch.equal(
        wa["qa_outputs.weight"],
        AutoModelForQuestionAnswering.from_pretrained(str(start)).state_dict()["qa_outputs.weight"],
    )
    assert read_json(a / READER_CONFIG_FILE)["title_prefix"] is True
    assert Reader.load(a).settings.title_prefix is True


@pytest.mark.integration
def test_reader_model_from_a_saved_checkpoint_via_cli(korquad_slice, tmp_path, capsys):
    """--reader-model loads any local HF checkpoint through the Auto classes (here a DistilBERT,
    whose tokenizer has no token_type_ids)."""
    qa_path, examples = korquad_slice
    checkpoint = tmp_path / "tiny-distilbert"
    tokenizer = train_wordpiece_tokenizer((ex.context for ex in examples), None, vocab_size=2000)
    tokenizer.model_input_names = ["input_ids", "attention_mask"]
    tokenizer.save_pretrained(str(checkpoint))
    torch.manual_seed(0)
    model = DistilBertForQuestionAnswering(
        DistilBertConfig(
            vocab_size=len(tokenizer),
            dim=32,
            n_layers=1,
            n_heads=2,
            hidden_dim=64,
            max_position_embeddings=256,
        )
    )
    model.save_pretrained(str(checkpoint))
    assert AutoTokenizer.from_pretrained(str(checkpoint)).model_input_names == ["input_ids", "attention_mask"]

    out = tmp_path / "model"
    argv = ["train", "--train", str(qa_path), "--out", str(out), "--reader-model", str(checkpoint)]
    assert (
        main([*argv, "--max-steps", "3", "--batch-size", "4", "--max-length", "128", "--num-threads", "2"])
        == 0
    )
    assert AutoConfig.from_pretrained(str(out)).model_type == "distilbert"
    assert read_json(out / READER_CONFIG_FILE)["reader_model"] == str(checkpoint)

    capsys.readouterr()
    rc = main(["predict", "--reader", str(out), "--data", str(qa_path), "--out", str(tmp_path / "pred"), "--score-mode", "logit_sum", "--n-best", "3"])  # fmt: skip
    assert rc == 0
    report = json.loads(capsys.readouterr().out)
    predictions = read_json(tmp_path / "pred" / "predictions.json")
    assert report["questions"] == len(examples) == len(predictions)
    nbest = read_json(tmp_path / "pred" / "nbest.json")
    assert all(len(v) <= 3 for v in nbest.values())
    # logit_sum: a text's score is its span's start + end logit, or the log of the summed exp of its spans'.
    for e in (e for v in nbest.values() for e in v):
        logit = e["start_logit"] + e["end_logit"]
        assert e["score"] == pytest.approx(logit) if e["spans"] == 1 else e["score"] >= logit - 1e-9


def test_cli_reports_bad_training_file(tmp_path, capsys):
    bad = tmp_path / "qa.jsonl"
    bad.write_text('{"id": "1", "question": "q"\n', encoding="utf-8")
    assert main(["train", "--train", str(bad), "--out", str(tmp_path / "m")]) == 2
    assert "qa.jsonl" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize(
    "record,message",
    [
        ({"id": "q1", "question": "수도는?"}, "[record q1]: training example has no context"),
        (
            {
                "id": "q2",
                "question": "수도는?",
                "context": "서울은 수도다.",
                "answers": {"answer_start": [], "text": []},
            },
            "no training example has an answer",
        ),
    ],
)
def test_training_refuses_questions_it_cannot_learn_from(tmp_path, capsys, record, message):
    path = tmp_path / "qa.jsonl"
    write_jsonl(path, [record])
    assert main(["train", "--train", str(path), "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and "qa.jsonl" in err[0]
    assert not (tmp_path / "m").exists()


def test_training_sets_threads_only_for_the_call(tiny_qa, tmp_path):
    original = torch.get_num_threads()
    torch.set_num_threads(3)  # a count nobody asks for
    try:
        config = ReaderTrainConfig(**{**TINY, "num_threads": 1}, max_steps=1, batch_size=4)
        out = train_reader(config, tiny_qa, tmp_path / "model")
        assert read_json(out / READER_CONFIG_FILE)["training"]["num_threads"] == 1  # in effect while training
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(original)


# Devices, precision, accumulation, checkpoints, evaluation, model families: tiny and fast.
FAST = dict(max_length=64, doc_stride=16, num_threads=1, log_every=1, shuffle=True, seed=3)


def _texts(path) -> list[str]:
    return [t for ex in load_qa(path).examples for t in (ex.context, ex.question)]


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory, tiny_qa, make_family_checkpoint):
    return make_family_checkpoint("bert", tmp_path_factory.mktemp("bert"), _texts(tiny_qa))


@pytest.fixture(scope="module")
def bert_no_dropout(tmp_path_factory, tiny_qa, make_family_checkpoint):
    return make_family_checkpoint("bert", tmp_path_factory.mktemp("bert0"), _texts(tiny_qa), dropout=0.0)


def _weights(folder) -> dict:
    return AutoModelForQuestionAnswering.from_pretrained(str(folder)).state_dict()


def _weighted_qa(tiny_qa, tmp_path):
    """tiny_qa with unequal per-example weights (curriculum / augmentation confidence)."""
    examples = load_qa(tiny_qa).examples
    for i, ex in enumerate(examples):
        ex.weight = 0.25 + 0.5 * (i % 4)
    path = tmp_path / "weighted.jsonl"
    write_qa(path, examples)
    return path


def test_grad_accum_and_uneven_parts_give_the_same_steps(bert_no_dropout, tiny_qa, tmp_path):
    """A step of 5 windows in one pass or in passes of 3 + 2: the same step losses (relative 1e-5: fp32
    sums in another order) and the same weights: almost all within 1e-6, none further apart than the
    four steps' learning rates add up to (2.5e-3: AdamW turns a 1e-9 difference in a near-zero gradient
    into a step of up to lr, and which parameter that hits changes with the machine's kernels; 1.06e-3
    was seen). Each part is divided by the step's window count, not its own: dividing by its own count
    would make the first loss a sum of two means. Each part is padded to its own longest window, which
    changes nothing only because padding is no candidate position in the loss."""
    qa = _weighted_qa(tiny_qa, tmp_path)
    base = ReaderTrainConfig(**FAST, reader_model=str(bert_no_dropout), batch_size=5, max_steps=4)
    one = train_reader(base, qa, tmp_path / "one")
    two = train_reader(base.model_copy(update={"grad_accum": 2}), qa, tmp_path / "two")
    l1 = [v for _, v in read_json(one / READER_CONFIG_FILE)["training"]["loss_history"]]
    l2 = [v for _, v in read_json(two / READER_CONFIG_FILE)["training"]["loss_history"]]
    assert l1 == pytest.approx(l2, rel=1e-5)
    w1, w2 = _weights(one), _weights(two)
    diffs = torch.cat([(w1[k] - w2[k]).abs().flatten() for k in w1])
    assert float(diffs.max()) < 2.5e-3, float(diffs.max())
    assert float((diffs > 1e-6).float().mean()) < 0.01


def test_padding_is_no_candidate_position_in_the_span_loss():
    """Two windows of 4 tokens padded to 6: with the attention mask the loss is the unpadded one, however
    high the padding's logits are; without it the padding takes probability away."""
    torch.manual_seed(0)
    start, end = torch.randn(2, 4), torch.randn(2, 4)
    positions, weights = (torch.tensor([1, 0]), torch.tensor([2, 0])), torch.ones(2)
    loose = torch.full((2, 2), 5.0)
    padded = torch.cat([start, loose], 1), torch.cat([end, loose], 1)
    mask = torch.tensor([[1, 1, 1, 1, 0, 0]] * 2)
    unpadded = weighted_span_loss(start, end, *positions, weights)
    assert float(weighted_span_loss(*padded, *positions, weights, attention_mask=mask)) == pytest.approx(
        float(unpadded)
    )
    assert float(weighted_span_loss(*padded, *positions, weights)) > float(unpadded) + 1


def test_context_masking_touches_only_context_tokens_outside_the_answer():
    """Question, special tokens, the answer and padding keep their ids; about `share` of the other
    context tokens become the mask id, a fresh draw each call."""
    ids = torch.arange(10, 410).reshape(2, 200)
    ids[1, 150:] = 0  # padding
    spans = [(20, 199, 50, 54), (20, 149, -1, -1)]  # (first context, last context, answer start, end)
    generator = torch.Generator().manual_seed(0)
    first, second = ids.clone(), ids.clone()
    mask_context(first, spans, 0.3, 3, generator)
    mask_context(second, spans, 0.3, 3, generator)
    for masked in (first, second):
        changed = masked != ids
        assert (masked[changed] == 3).all()
        assert not changed[:, :20].any() and not changed[0, 50:55].any() and not changed[1, 150:].any()
        assert 0.2 < changed.sum().item() / (175 + 130) < 0.4
    assert not torch.equal(first, second)


def test_context_masking_changes_the_training_not_its_steps(bert_dir, tiny_qa, tmp_path):
    config = ReaderTrainConfig(**FAST, reader_model=str(bert_dir), batch_size=4, max_steps=2)
    plain = read_json(train_reader(config, tiny_qa, tmp_path / "plain") / READER_CONFIG_FILE)["training"]
    masked = config.model_copy(update={"context_masking": 0.5})
    noisy = read_json(train_reader(masked, tiny_qa, tmp_path / "masked") / READER_CONFIG_FILE)["training"]
    assert noisy["steps"] == plain["steps"] == 2
    assert noisy["loss_history"] != plain["loss_history"]


def test_context_masking_refuses_a_tokenizer_without_a_mask_token(bert_dir, tiny_qa, tmp_path, capsys):
    """One line, exit 2, before any window is built, and no output folder."""
    model_dir = tmp_path / "no-mask"
    AutoModelForQuestionAnswering.from_pretrained(str(bert_dir)).save_pretrained(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(str(bert_dir))
    tokenizer.mask_token = None
    tokenizer.save_pretrained(model_dir)
    out = tmp_path / "m"
    argv = ["train", "--train", str(tiny_qa), "--out", str(out), "--reader-model", str(model_dir)]
    capsys.readouterr()  # the bars of save_pretrained above
    assert main([*argv, "--context-masking", "0.15", "--max-length", "64", "--doc-stride", "16"]) == 2
    err = capsys.readouterr().err
    # transformers' own weight-loading bar aside, one line
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("Loading weights")]
    assert len(lines) == 1 and "no mask token" in lines[0] and "Traceback" not in err
    assert not out.exists()


def test_an_epoch_reads_every_answer_window_and_a_share_of_the_others(bert_dir, tiny_qa, tmp_path):
    """no_answer_windows=0.5: an epoch is every answer window and half the no-answer ones, so fewer
    steps; the summary says how many windows an epoch read."""
    base = ReaderTrainConfig(
        **FAST, reader_model=str(bert_dir), batch_size=4, epochs=1, no_answer_windows=1.0
    )
    full = read_json(train_reader(base, tiny_qa, tmp_path / "all") / READER_CONFIG_FILE)["training"]
    half = base.model_copy(update={"no_answer_windows": 0.5})
    part = read_json(train_reader(half, tiny_qa, tmp_path / "half") / READER_CONFIG_FILE)["training"]
    assert full["windows_per_epoch"] == full["features"] == part["features"]
    assert full["features"] / 2 < part["windows_per_epoch"] < full["features"]
    assert (full["steps"], part["steps"]) == (
        math.ceil(full["features"] / 4),
        math.ceil(part["windows_per_epoch"] / 4),
    )


def test_bf16_on_the_cpu_trains_and_predicts(bert_dir, tiny_qa, tmp_path):
    config = ReaderTrainConfig(
        **FAST, reader_model=str(bert_dir), batch_size=4, max_steps=2, device="cpu", precision="bf16"
    )
    out = train_reader(config, tiny_qa, tmp_path / "bf16")
    training = read_json(out / READER_CONFIG_FILE)["training"]
    assert (training["device"], training["precision"], training["processes"]) == ("cpu", "bf16", 1)
    assert math.isfinite(training["final_loss"])
    assert next(AutoModelForQuestionAnswering.from_pretrained(str(out)).parameters()).dtype == torch.float32
    examples = load_qa(tiny_qa).examples
    predictions, _ = Reader.load(out).predict(
        results_from_gold(examples), PredictConfig(precision="bf16", trim_particles=False)
    )
    assert set(predictions) == {ex.id for ex in examples}


def test_default_is_cpu_fp32_as_before(bert_dir, tiny_qa, tmp_path):
    out = train_reader(
        ReaderTrainConfig(**FAST, reader_model=str(bert_dir), max_steps=1), tiny_qa, tmp_path / "m"
    )
    training = read_json(out / READER_CONFIG_FILE)["training"]
    if not torch.cuda.is_available():
        assert (training["device"], training["precision"]) == ("cpu", "fp32")
    assert training["steps_per_second"] > 0 and not (out / "checkpoints").exists()


class Interrupted(Exception):
    pass


def _stop_after(k: int):
    def hook(step: int) -> None:
        if step == k:
            raise Interrupted

    return hook


def test_an_interrupted_run_resumes_to_the_same_weights(bert_dir, tiny_qa, tmp_path):
    """Dropout on, shuffling on, 2 epochs, stopped mid-epoch 2 after step 5 (checkpoint at 4): the resumed
    run ends bit-identical (torch.equal) to one that never stopped, on the CPU."""
    config = ReaderTrainConfig(
        **FAST, reader_model=str(bert_dir), batch_size=4, epochs=3, checkpoint_every=2, keep_checkpoints=2
    )
    whole = train_reader(config, tiny_qa, tmp_path / "whole")
    out = tmp_path / "cut"
    with pytest.raises(Interrupted):
        train_reader(config, tiny_qa, out, on_step=_stop_after(5))
    assert [p.name for p in (out / "checkpoints").iterdir() if p.name.startswith("step-")] == [
        "step-00000002",
        "step-00000004",
    ] or sorted(p.name for p in (out / "checkpoints").glob("step-*")) == ["step-00000002", "step-00000004"]
    assert not (out / "config.json").exists()  # no model until training ends
    resumed = train_reader(config.model_copy(update={"resume": True}), tiny_qa, out)
    training = read_json(resumed / READER_CONFIG_FILE)["training"]
    assert (
        training["resumed_from_step"] == 4
        and training["steps"] == read_json(whole / READER_CONFIG_FILE)["training"]["steps"]
    )
    assert training["loss_history"] == read_json(whole / READER_CONFIG_FILE)["training"]["loss_history"]
    w_whole, w_resumed = _weights(whole), _weights(resumed)
    assert all(torch.equal(w_whole[k], w_resumed[k]) for k in w_whole)
    assert (resumed / "checkpoints" / "run.json").is_file()


def test_resume_refuses_another_runs_or_a_damaged_checkpoint(bert_dir, tiny_qa, tmp_path, capsys):
    out = tmp_path / "m"
    config = ReaderTrainConfig(
        **FAST, reader_model=str(bert_dir), batch_size=4, max_steps=3, checkpoint_every=1
    )
    train_reader(config, tiny_qa, out)
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    capsys.readouterr()
    argv = ["train", "--train", str(tiny_qa), "--out", str(out), "--reader-model", str(bert_dir), "--max-length", "64",
            "--doc-stride", "16", "--batch-size", "4", "--max-steps", "3", "--checkpoint-every", "1", "--seed", "3",
            "--num-threads", "1", "--resume"]  # fmt: skip
    assert main([*argv, "--learning-rate", "0.5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "checkpoints are from another run" in err[0]
    newest = sorted((out / "checkpoints").glob("step-*"))[-1] / "state.pt"
    newest.write_bytes(newest.read_bytes()[:200])
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "corrupted checkpoint" in err[0]
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before  # previous output intact


def test_evaluation_keeps_the_best_and_stops_early(bert_dir, tiny_qa, tmp_path):
    """A learning rate so small that F1 cannot move: the first evaluation stays best, patience 2 stops
    the run after the third."""
    config = ReaderTrainConfig(
        **FAST, reader_model=str(bert_dir), batch_size=2, epochs=5, learning_rate=1e-12,
        eval_qa=str(tiny_qa), eval_every=2, patience=2,
    )  # fmt: skip
    out = train_reader(config, tiny_qa, tmp_path / "m")
    training = read_json(out / READER_CONFIG_FILE)["training"]
    assert [e[0] for e in training["eval_history"]] == [2, 4, 6]
    assert training["stopped_early"] and training["steps"] == 6
    assert training["best"]["step"] == 2 and (out / "checkpoints" / "best" / "meta.json").is_file()
    assert all(0 <= v <= 100 for e in training["eval_history"] for v in e[1:])


@pytest.mark.parametrize("family", FAMILIES)
def test_model_families_train_save_reload_and_predict(family, tiny_qa, tmp_path, make_family_checkpoint):
    """reader_model = a local folder of each family; the same code trains, saves, reloads and reads."""
    start = make_family_checkpoint(family, tmp_path / family, _texts(tiny_qa))
    config = ReaderTrainConfig(**FAST, reader_model=str(start), batch_size=4, max_steps=2)
    out = train_reader(config, tiny_qa, tmp_path / "reader")
    reader = Reader.load(out)
    assert (
        type(reader.model).__name__
        == type(AutoModelForQuestionAnswering.from_pretrained(str(start))).__name__
    )
    examples = load_qa(tiny_qa).examples
    predictions, nbest = reader.predict(
        results_from_gold(examples), PredictConfig(trim_particles=False, n_best=3)
    )
    assert set(predictions) == {ex.id for ex in examples}
    assert all(e["text"] in ex.context for ex in examples for e in nbest[ex.id])


def test_the_reader_records_its_answer_length_limit_and_predict_keeps_to_it(tiny_qa, tmp_path):
    """Train writes the 99th percentile of its answers' token lengths (rounded up) into odqa_reader.json;
    predict's default span limit is that number, an explicit max_answer_length overrides it, and a reader
    saved before the number existed gets the transformers example's 30."""
    from odqa.reader.config import DEFAULT_MAX_ANSWER_LENGTH
    from odqa.reader.features import train_features
    from odqa.reader.train import answer_length_limit

    out = train_reader(ReaderTrainConfig(**TINY, max_steps=2, batch_size=4), tiny_qa, tmp_path / "m")
    reader = Reader.load(out)
    examples = load_qa(tiny_qa).examples
    features = train_features(examples, reader.tokenizer, reader.settings)
    lengths = sorted(
        f["end_positions"] - f["start_positions"] + 1
        for f in features
        if f["start_positions"] != f["input_ids"].index(reader.tokenizer.cls_token_id)
    )
    expected = math.ceil(lengths[-2] + 0.99 * (len(lengths) - 1) % 1 * (lengths[-1] - lengths[-2]))
    assert read_json(out / READER_CONFIG_FILE)["max_answer_length"] == expected == reader.max_answer_length
    assert answer_length_limit(reader.tokenizer, features) == expected

    contexts = {ex.id: ex.context for ex in examples}

    def longest(config: PredictConfig) -> int:
        """The most context tokens any n-best answer covers."""
        _, nbest = reader.predict(results_from_gold(examples), config)
        most = 0
        for qid, entries in nbest.items():
            offsets = reader.tokenizer(contexts[qid], return_offsets_mapping=True, add_special_tokens=False)
            for e in entries:
                start, end = e["start_char"], e["start_char"] + len(e["text"])
                most = max(most, sum(start <= a < end for a, _ in offsets["offset_mapping"]))
        return most

    plain = PredictConfig(trim_particles=False, word_spans="off", n_best=50)
    assert longest(plain) <= expected
    assert longest(plain.replace(max_answer_length=1)) == 1
    saved = read_json(out / READER_CONFIG_FILE)
    del saved["max_answer_length"]
    (out / READER_CONFIG_FILE).write_text(json.dumps(saved, ensure_ascii=False))
    assert Reader.load(out).max_answer_length == DEFAULT_MAX_ANSWER_LENGTH
