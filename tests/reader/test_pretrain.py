"""MLM pre-training (odqa.reader.pretrain): sequences, whole-morpheme masking, the model folder a reader
starts from, checkpoints of the families users bring, bad input."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import AutoTokenizer, DataCollatorForLanguageModeling

from odqa.errors import InputError
from odqa.io import read_json, write_jsonl
from odqa.reader.config import PRETRAIN_INFO_FILE, READER_CONFIG_FILE, PretrainConfig, ReaderTrainConfig
from odqa.reader.pretrain import _sequences, _touching_offsets, mlm_loss, pretrain
from odqa.reader.train import train_reader

TINY = dict(
    hidden_size=32, num_layers=1, num_heads=2, vocab_size=300, max_length=64, num_threads=1, log_every=1
)


@pytest.fixture(scope="module")
def passages(tmp_path_factory, corpus):
    path = tmp_path_factory.mktemp("pt") / "passages.jsonl"
    rows = [
        {"passage_id": f"d{i}-0", "document_id": f"d{i}", "title": "문서", "text": text}
        for i, text in enumerate(corpus * 6)
    ]
    write_jsonl(path, rows)
    return path


def test_touching_offsets_group_exactly_the_words():
    """The collator's whole-word rule (a token continues a word when it starts where the last ended)
    must see Kiwi's words: tokens of one word touch, a new word leaves a gap, specials are (0, 0)."""
    offsets = _touching_offsets([1, 0, 0, 0, 0, 1], iter([7, 7, 8, 9]))
    assert offsets[0] == offsets[-1] == (0, 0)
    assert offsets[1][1] == offsets[2][0]  # same word
    assert offsets[2][1] != offsets[3][0] and offsets[3][1] != offsets[4][0]  # new words


def test_whole_morpheme_masking_masks_all_pieces_of_a_morpheme(tokenizer):
    """Through transformers' own collator: every masked position's morpheme is masked entirely."""
    config = PretrainConfig(whole_word_masking=True, max_length=48, num_threads=1)
    texts = ["세종대왕은 조선의 제4대 왕으로 훈민정음을 창제하였다."] * 4
    sequences = _sequences(tokenizer, texts, 48, config)
    collator = DataCollatorForLanguageModeling(
        tokenizer,
        mlm_probability=0.5,
        whole_word_mask=True,
        seed=0,
        mask_replace_prob=1.0,
        random_replace_prob=0.0,
    )
    batch = collator([dict(s) for s in sequences])
    for row, seq in enumerate(sequences):
        masked = batch["labels"][row] != -100
        starts = [o[0] for o in seq["offset_mapping"]]
        words: dict[int, list[int]] = {}
        word = -1
        for i, (s, e) in enumerate(seq["offset_mapping"]):
            if (s, e) == (0, 0):
                continue
            if i == 0 or seq["offset_mapping"][i - 1][1] != s:
                word += 1
            words.setdefault(word, []).append(i)
        assert masked.any()
        for positions in words.values():
            flags = {bool(masked[i]) for i in positions}
            assert len(flags) == 1, (positions, starts)


def test_masked_only_loss_equals_the_models_own():
    from transformers import BertConfig, BertForMaskedLM

    torch.manual_seed(0)
    model = BertForMaskedLM(
        BertConfig(
            vocab_size=40, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32
        )
    ).eval()
    ids = torch.randint(5, 40, (2, 9))
    labels = torch.full_like(ids, -100)
    labels[0, 2], labels[1, 6] = 11, 12
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}
    with torch.no_grad():
        assert float(mlm_loss(model, batch)) == pytest.approx(float(model(**batch).loss), rel=1e-5)


@pytest.mark.integration
def test_pretrain_from_scratch_then_a_reader_starts_from_it(passages, tiny_qa, tmp_path):
    config = PretrainConfig(**TINY, max_steps=6, batch_size=4, learning_rate=5e-3, whole_word_masking=True)
    result = pretrain(config, passages, tmp_path / "pt")
    info = read_json(tmp_path / "pt" / PRETRAIN_INFO_FILE)
    assert info["config"] == config.to_dict() and result.summary["steps"] == 6
    assert math.isfinite(result.summary["final_loss"]) and (tmp_path / "pt" / "pretrain_loss.png").is_file()
    assert result.summary["final_loss"] < result.summary["first_loss"]
    reader = train_reader(
        ReaderTrainConfig(
            reader_model=str(tmp_path / "pt"), max_length=64, doc_stride=16, max_steps=2, num_threads=1
        ),
        tiny_qa,
        tmp_path / "reader",
    )
    saved = read_json(reader / READER_CONFIG_FILE)
    # the pretrained model has the token types of both reader features
    assert saved["question_overlap"] is True and saved["focus_sentence"] is True
    assert (
        AutoTokenizer.from_pretrained(str(reader)).get_vocab()
        == AutoTokenizer.from_pretrained(str(tmp_path / "pt")).get_vocab()
    )
    # Reader windows longer than the pre-trained positions are refused before training.
    with pytest.raises(InputError, match="positions"):
        train_reader(
            ReaderTrainConfig(reader_model=str(tmp_path / "pt"), max_length=128, max_steps=1, num_threads=1),
            tiny_qa,
            tmp_path / "long",
        )


@pytest.mark.integration
@pytest.mark.parametrize("family", ["bert", "roberta-bert-tokenizer", "xlm-roberta", "electra"])
def test_continue_pretraining_a_checkpoint_of_each_family(
    family, passages, corpus, tmp_path, make_family_checkpoint
):
    """Task-adaptive pre-training of the checkpoint families users bring (tiny, local, no hub)."""
    base = make_family_checkpoint(family, tmp_path / "base", corpus)
    config = PretrainConfig(base_model=str(base), max_length=64, max_steps=2, batch_size=4, num_threads=1)
    result = pretrain(config, passages, tmp_path / "pt")
    assert result.summary["steps"] == 2 and math.isfinite(result.summary["final_loss"])
    assert result.summary["sequence_length"] <= 64
    out = train_reader(
        ReaderTrainConfig(
            reader_model=str(result.model_dir), max_length=64, doc_stride=16, max_steps=1, num_threads=1
        ),
        _qa(tmp_path, corpus),
        tmp_path / "reader",
    )
    saved = read_json(out / READER_CONFIG_FILE)
    # a hub model's types mean sentence A/B: no reader features
    assert saved["question_overlap"] is False and saved["focus_sentence"] is False


def _qa(tmp_path, corpus):
    from odqa.data import write_qa
    from odqa.schema import QAExample

    path = tmp_path / "qa.jsonl"
    text = corpus[1]
    write_qa(
        path,
        [
            QAExample(
                "q1",
                "누가 훈민정음을 창제하였나?",
                text,
                "세종",
                "d1",
                {"answer_start": [0], "text": ["세종대왕"]},
            )
        ],
    )
    return path


def test_bad_input_is_one_input_error_and_writes_nothing(tmp_path):
    empty = tmp_path / "passages.jsonl"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(InputError):
        pretrain(PretrainConfig(**TINY, max_steps=1), empty, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    with pytest.raises(InputError, match="base_model"):
        pretrain(PretrainConfig(base_model=str(tmp_path / "nowhere"), max_steps=1), empty, tmp_path / "out")


def test_cli_pretrain_refuses_a_foreign_output_folder(run_cli, passages, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    rc, stdout, stderr = run_cli(
        ["pretrain", "--passages", passages, "--out", out, "--max-steps", "1"], modules=("reader",)
    )
    # stdout: nothing but whitespace (a kfp output thread of an earlier test in the process may add some)
    assert rc == 2 and stdout.strip() == "" and stderr.count("\n") == 1
    assert (out / "notes.txt").read_text() == "keep me"
