"""Kiwi morpheme pieces and the morpheme-aware WordPiece vocabulary built from them."""

from __future__ import annotations

from transformers import AutoTokenizer

from odqa.text.morphemes import morpheme_pieces, piece_ends, pieces_of
from odqa.text.wordpiece import train_wordpiece_tokenizer

TEXTS = [
    "세종대왕은 1443년에 훈민정음을 창제하였다.",
    "서울에서 부산까지 기차로 갔다.",
    "이순신은 임진왜란 때 수군을 지휘하였다.",
]


def test_pieces_split_particles_and_endings_and_are_slices_of_the_text():
    pieces = list(morpheme_pieces(TEXTS, num_workers=1))
    assert pieces[0][:2] == ["세종대왕", "은"]  # the compound noun stays whole, the particle goes
    assert "1443년" in pieces[0]  # number + unit is one piece
    assert "에서" in pieces[1] and "서울" in pieces[1]
    for text, row in zip(TEXTS, pieces, strict=True):
        assert "".join(row) == "".join(text.split())  # every character once, in order, nothing rewritten


def test_pieces_of_cuts_at_points_and_whitespace():
    assert pieces_of("ab cd", [1, 4]) == ["a", "b", "c", "d"]
    assert pieces_of("  ab  ", [2]) == ["ab"]  # a cut at a word's first character adds nothing


def _aligned(tokenizer, text: str, answer: str) -> bool:
    start = text.index(answer)
    offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    return start in {s for s, _ in offsets} and start + len(answer) in {e for _, e in offsets}


def test_morpheme_vocabulary_ends_tokens_before_particles(tmp_path):
    """The eojeol vocabulary learns '세종대왕은' as one token, so the answer '세종대왕' is no token span;
    the morpheme vocabulary keeps the particle apart, and the saved tokenizer needs no Kiwi to do it."""
    corpus = TEXTS * 30
    eojeol = train_wordpiece_tokenizer(corpus, None, vocab_size=300, min_frequency=1)
    assert not _aligned(eojeol, TEXTS[0], "세종대왕")
    train_wordpiece_tokenizer(
        corpus, tmp_path, vocab_size=300, min_frequency=1, morphemes=True, num_workers=1
    )
    loaded = AutoTokenizer.from_pretrained(str(tmp_path))
    for text, answer in [
        (TEXTS[0], "세종대왕"),
        (TEXTS[0], "훈민정음"),
        (TEXTS[1], "부산"),
        (TEXTS[2], "수군"),
    ]:
        assert _aligned(loaded, text, answer), (answer, loaded.tokenize(text))
    assert loaded.tokenize("세종대왕은")[-1] == "##은"


def test_piece_ends_mark_particles_and_endings_inside_words_and_come_from_a_cache(monkeypatch):
    import odqa.text.morphemes as morphemes

    text = TEXTS[0]  # 세종대왕은 1443년에 훈민정음을 창제하였다.
    ends = piece_ends([text])[0]
    assert {text.index("은"), text.index("에 "), text.index("을 ")} <= ends
    assert not {1, 2, 3} & ends  # no cut inside the compound noun 세종대왕
    assert all(not text[i - 1].isspace() and not text[i].isspace() for i in ends)  # inside words only

    def no_kiwi(*args, **kwargs):
        raise AssertionError("a text seen before was analysed again")

    monkeypatch.setattr(morphemes, "get_kiwi", no_kiwi)
    assert piece_ends([text, text]) == [ends, ends]
