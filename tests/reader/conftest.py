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
