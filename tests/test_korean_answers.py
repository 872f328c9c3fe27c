"""Trimming trailing particles/copulas/endings/punctuation from predicted Korean answer spans."""

from __future__ import annotations

import pytest

from odqa.korean_answers import trim_particles

CASES = [
    # particles
    ("세종대왕은", "세종대왕"),
    ("1443년에", "1443년"),
    ("서울에서는", "서울"),
    ("세종대왕께서", "세종대왕"),
    ("아르헨티나와", "아르헨티나"),
    ("미네소타 대학교에서", "미네소타 대학교"),
    # copula and its endings
    ("서울이다", "서울"),
    ("학교였다", "학교"),
    ("학교예요", "학교"),
    ("조선왕조실록이라는", "조선왕조실록"),
    ("1,000명이다", "1,000명"),
    # punctuation and trailing space
    ("서울.", "서울"),
    ("4종이다.", "4종"),
    ("세종대왕께서 ", "세종대왕"),
    # mixed Latin / digits / symbols
    ("IBM사의", "IBM사"),
    ("Apple Inc.의", "Apple Inc."),
    ("iPhone 5S를", "iPhone 5S"),
    ("약 30%의", "약 30%"),
    ("35cm로", "35cm"),
    # nouns and verb forms are never cut
    ("아이오와", "아이오와"),
    ("가나", "가나"),  # 가+나 (verb + ending): nothing noun-like left to keep
    ("달리고", "달리고"),
    ("아름다운", "아름다운"),
    ("훈민정음", "훈민정음"),
    ("3.1 운동", "3.1 운동"),
    # names that end in a particle-like syllable stay whole
    ("황치훈", "황치훈"),  # Kiwi reads 훈 as 후+ᆫ: a cut would split a syllable
    ("마리아 카롤리나", "마리아 카롤리나"),  # 나 as a particle is not clearly more likely
    ("쇼와", "쇼와"),
    ("", ""),
]


@pytest.mark.parametrize("text,expected", CASES)
def test_trim_particles(text, expected):
    assert trim_particles([text]) == [expected]


def test_batch_keeps_order_and_length():
    texts = [t for t, _ in CASES]
    assert trim_particles(texts) == [e for _, e in CASES]
    assert trim_particles([]) == []


def test_trimming_changes_particle_cases_and_is_idempotent():
    """Trimming once removes the whole tail (서울에서는 -> 서울, not 서울에서) and a second pass finds
    nothing more to cut (1443년 keeps 년); a no-op trim fails the first check, a one-particle-at-a-time
    or over-eager trim the second."""
    particle_cases = [t for t, e in CASES if t != e]
    assert len(particle_cases) >= 15  # the check below runs the trimming path, not only fixed points
    once = trim_particles(particle_cases)
    assert all(o != t for o, t in zip(once, particle_cases, strict=True))
    assert trim_particles(once) == once


def test_margin_zero_trusts_kiwi_best_reading():
    assert trim_particles(["쇼와"], min_margin=0.0) == ["쇼"]
    assert trim_particles(["쇼와"], min_margin=3.0) == ["쇼와"]


def test_trimming_rarely_changes_korquad_gold_answers(korquad_path):
    """Gold answers almost never end in a particle, so trimming them must almost never change them."""
    from odqa.data import load_qa

    golds = [ex.answers["text"][0] for ex in load_qa(korquad_path).examples]
    changed = sum(a != b for a, b in zip(golds, trim_particles(golds), strict=True))
    assert changed / len(golds) < 0.01
