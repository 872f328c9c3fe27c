"""A tiny Korean WordPiece tokenizer and the hand-made texts it was trained on, shared by reader tests."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from odqa.text.wordpiece import train_wordpiece_tokenizer

WORDS = "서울 부산 대구 인천 광주 대전 울산 세종 수원 성남 고양 용인 창원 청주 전주 천안 안산 김해 포항 제주".split()
CORPUS = [
    "대한민국의 수도는 서울특별시이다. 서울은 한강을 끼고 있다.",
    "세종대왕은 조선의 제4대 왕으로 훈민정음을 창제하였다.",
    " ".join(WORDS * 3),
    "이순신은 조선 중기의 무신이다. 임진왜란 때 수군을 지휘하였다.",
]


@pytest.fixture(scope="session")
def words() -> list[str]:
    return WORDS


@pytest.fixture(scope="session")
def corpus() -> list[str]:
    return CORPUS


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("tok")
    train_wordpiece_tokenizer(CORPUS * 5, out, vocab_size=300, min_frequency=1)
    return out


@pytest.fixture(scope="session")
def tokenizer(tokenizer_dir):
    return AutoTokenizer.from_pretrained(str(tokenizer_dir))


@pytest.fixture
def fresh_tokenizer(tokenizer_dir):
    """A tokenizer of its own, for tests that change it (post-processor, pad token, padding side)."""
    return AutoTokenizer.from_pretrained(str(tokenizer_dir))


# Tiny readers of the families people fine-tune, built and saved locally (no hub): each is a
# `reader_model` folder with its own tokenizer. 32 hidden units, one layer: seconds to train.
SMALL = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)


def _unigram_xlmr_tokenizer(texts: list[str]):
    """An XLM-R style tokenizer: SentencePiece-like Unigram model, `<s> q </s></s> c </s>` pairs."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import XLMRobertaTokenizerFast

    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tk = Tokenizer(models.Unigram())
    tk.normalizer = normalizers.NFC()
    tk.pre_tokenizer = pre_tokenizers.Metaspace()
    tk.decoder = decoders.Metaspace()
    tk.train_from_iterator(
        texts * 3, trainers.UnigramTrainer(vocab_size=400, special_tokens=specials, unk_token="<unk>")
    )
    s, e = tk.token_to_id("<s>"), tk.token_to_id("</s>")
    tk.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", s), ("</s>", e)]
    )
    return XLMRobertaTokenizerFast(
        tokenizer_object=tk, bos_token="<s>", eos_token="</s>", cls_token="<s>", sep_token="</s>",
        pad_token="<pad>", unk_token="<unk>", mask_token="<mask>",
    )  # fmt: skip


@pytest.fixture(scope="session")
def make_family_checkpoint():
    return _make_family_checkpoint


def _make_family_checkpoint(family: str, out, texts: list[str], dropout: float = 0.1):
    """Save a randomly initialised QA model of `family` + its tokenizer into `out` (dropout 0: runs that
    split batches differently draw no masks, so they can be compared number for number)."""
    import torch
    from transformers import (
        BertConfig,
        BertForQuestionAnswering,
        ElectraConfig,
        ElectraForQuestionAnswering,
        RobertaConfig,
        RobertaForQuestionAnswering,
        XLMRobertaConfig,
        XLMRobertaForQuestionAnswering,
    )  # fmt: skip

    torch.manual_seed(0)
    small = {**SMALL, "hidden_dropout_prob": dropout, "attention_probs_dropout_prob": dropout}
    if family == "xlm-roberta":
        tokenizer = _unigram_xlmr_tokenizer(texts)
        model = XLMRobertaForQuestionAnswering(
            XLMRobertaConfig(
                vocab_size=len(tokenizer),
                max_position_embeddings=160,
                type_vocab_size=1,
                pad_token_id=tokenizer.pad_token_id,
                **small,
            )  # fmt: skip
        )
    else:
        tokenizer = train_wordpiece_tokenizer(texts * 3, None, vocab_size=400, min_frequency=1)
        if family == "bert":
            model = BertForQuestionAnswering(
                BertConfig(vocab_size=len(tokenizer), max_position_embeddings=160, **small)
            )
        elif family == "roberta-bert-tokenizer":
            # klue/roberta: a RoBERTa whose tokenizer is BERT's WordPiece, one token type only.
            model = RobertaForQuestionAnswering(
                RobertaConfig(
                    vocab_size=len(tokenizer),
                    max_position_embeddings=160,
                    type_vocab_size=1,
                    pad_token_id=tokenizer.pad_token_id,
                    **small,
                )  # fmt: skip
            )
        elif family == "electra":
            model = ElectraForQuestionAnswering(
                ElectraConfig(
                    vocab_size=len(tokenizer), embedding_size=32, max_position_embeddings=160, **SMALL
                )
            )
        else:
            raise ValueError(family)
    tokenizer.save_pretrained(str(out))
    model.save_pretrained(str(out))
    return out
