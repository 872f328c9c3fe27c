"""odqa.text.wordpiece: the from-scratch vocabulary."""

from __future__ import annotations

import pytest

from odqa.text.wordpiece import SPECIAL_TOKENS, train_wordpiece_tokenizer

pytestmark = pytest.mark.unit

TEXTS = [
    "Wel come to the 🤗 Tok en izers libr ary.",
    "세종대왕은 훈민정음을 창제하였다.",
    "세종은 조선의 왕이다.",
] * 2


def test_the_same_corpus_gives_the_same_vocabulary_every_time():
    """tokenizers' trainer alone gave 30 different vocabularies in 30 runs on this corpus (ties between
    equally frequent merges broken by hash-map order, huggingface/tokenizers#1794)."""
    vocabularies = {
        tuple(sorted(train_wordpiece_tokenizer(TEXTS, vocab_size=120, min_frequency=1).get_vocab().items()))
        for _ in range(10)
    }
    assert len(vocabularies) == 1


def test_only_berts_tokens_are_special_and_every_character_continues():
    tok = train_wordpiece_tokenizer(TEXTS, vocab_size=120, min_frequency=1)
    assert set(tok.all_special_tokens) == set(SPECIAL_TOKENS)
    vocab = tok.get_vocab()
    assert all(f"##{c}" in vocab for c in "세종대왕은훈민정음")
    assert len(vocab) <= 120
    # text containing '##' is read as text, not as one of the trainer's placeholder tokens
    assert tok.tokenize("##세") != ["##세"]
