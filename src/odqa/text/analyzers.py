"""Analyzers turn text into index terms for sparse retrieval.

Korean attaches particles and endings to words (서울은, 서울의, 서울에서), so splitting on spaces
leaves many surface forms of one word. Kiwi morphemes keep the content part; character bigrams
match partial words and unknown names without a dictionary. bench/README.md has their measured recall.

Every analyzer NFC-normalises and lower-cases, and describes itself with a JSON-able `config()`
so an index can rebuild the exact analyzer it was built with (`analyzer_from_config`).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import re
import unicodedata
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar

from pydantic import BeforeValidator

from odqa.errors import InputError
from odqa.progress import progress_bar

logger = logging.getLogger(__name__)

# Kiwi tag prefixes of content morphemes: nouns, predicates (stems), roots, foreign words, numbers, hanja.
DEFAULT_KIWI_POS: tuple[str, ...] = ("N", "V", "XR", "SL", "SN", "SH")

_WORD = re.compile(r"\w+")


def normalize(text: str) -> str:
    """NFC keeps Hangul syllables composed (NFD would split them into jamo); lower-case for Latin."""
    return unicodedata.normalize("NFC", text).lower()


class Analyzer(ABC):
    name: ClassVar[str]

    @abstractmethod
    def analyze(self, texts: list[str], progress: bool = False) -> list[list[str]]:
        """Terms for each text, in text order (repeats kept: BM25 counts them)."""

    def config(self) -> dict[str, Any]:
        """Everything that changes the terms; `analyzer_from_config` rebuilds an equal analyzer."""
        options = {
            f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.metadata.get("config", True)
        }
        return {"name": self.name, **{k: list(v) if isinstance(v, tuple) else v for k, v in options.items()}}


@dataclass(frozen=True)
class WhitespaceAnalyzer(Analyzer):
    name: ClassVar[str] = "whitespace"

    def analyze(self, texts: list[str], progress: bool = False) -> list[list[str]]:
        return [normalize(t).split() for t in progress_bar(texts, desc="whitespace", disable=not progress)]


def _bigrams(text: str) -> list[str]:
    terms: list[str] = []
    for word in _WORD.findall(text):
        if len(word) == 1:
            terms.append(word)
        else:
            terms.extend(word[i : i + 2] for i in range(len(word) - 1))
    return terms


@dataclass(frozen=True)
class BigramAnalyzer(Analyzer):
    """Character bigrams inside each word (punctuation dropped); a one-character word is kept whole."""

    name: ClassVar[str] = "bigram"

    def analyze(self, texts: list[str], progress: bool = False) -> list[list[str]]:
        return [_bigrams(normalize(t)) for t in progress_bar(texts, desc="bigrams", disable=not progress)]


def get_kiwi(num_workers: int = -1):
    """One Kiwi per process and thread count (loading the model takes a second or more)."""
    return _load_kiwi(os.cpu_count() or 1 if num_workers == -1 else num_workers)


@functools.lru_cache(maxsize=4)
def _load_kiwi(num_workers: int):
    from kiwipiepy import Kiwi

    logger.info("loading Kiwi (num_workers=%d)", num_workers)
    return Kiwi(num_workers=num_workers)


def _as_tuple(pos: Any) -> tuple[str, ...]:
    if isinstance(pos, str):
        pos = pos.split(",")
    return tuple(str(p).strip().upper() for p in pos if str(p).strip())


@dataclass(frozen=True)
class KiwiAnalyzer(Analyzer):
    """Kiwi morphemes whose tag starts with one of `pos` (a prefix: "N" keeps NNG, NNP, NNB, NR, NP).

    `num_workers` only sets Kiwi's threads (-1: all cores); it never changes the terms, so it is
    not part of `config()`.
    """

    name: ClassVar[str] = "kiwi"
    pos: Annotated[tuple[str, ...], BeforeValidator(_as_tuple)] = DEFAULT_KIWI_POS  # "N,V" or ["N", "V"]
    num_workers: int = field(default=-1, metadata={"config": False})

    def __post_init__(self) -> None:
        object.__setattr__(self, "pos", _as_tuple(self.pos))
        if not self.pos:
            raise InputError("kiwi analyzer: `pos` must name at least one tag prefix (e.g. N, V, SL)")
        if self.num_workers == 0:
            raise InputError("kiwi analyzer: num_workers=0 is deprecated in Kiwi; use -1 (all cores) or >= 1")

    def analyze(self, texts: list[str], progress: bool = False) -> list[list[str]]:
        kiwi = get_kiwi(self.num_workers)
        nfc = [unicodedata.normalize("NFC", t) for t in texts]
        pos = self.pos
        out: list[list[str]] = []
        # A list goes through Kiwi's worker threads in one call; results come back in order.
        for tokens in progress_bar(kiwi.tokenize(nfc), total=len(nfc), desc="kiwi", disable=not progress):
            out.append([t.form.lower() for t in tokens if t.tag.startswith(pos)])
        return out


@dataclass(frozen=True)
class KiwiBigramAnalyzer(KiwiAnalyzer):
    """Kiwi content morphemes followed by the character bigrams of the same text."""

    name: ClassVar[str] = "kiwi+bigram"

    def analyze(self, texts: list[str], progress: bool = False) -> list[list[str]]:
        morphemes = super().analyze(texts, progress=progress)
        return [m + _bigrams(normalize(t)) for m, t in zip(morphemes, texts, strict=True)]


ANALYZERS: dict[str, type[Analyzer]] = {
    cls.name: cls for cls in (WhitespaceAnalyzer, BigramAnalyzer, KiwiAnalyzer, KiwiBigramAnalyzer)
}


def make_analyzer(name: str, **options: Any) -> Analyzer:
    """The analyzer `name` with `options` typed as its fields declare (a whole float from a KFP
    parameter is an int again; 2.5 for an int is an error), unknown options refused."""
    from pydantic import TypeAdapter, ValidationError

    from odqa.config import describe_errors

    if name not in ANALYZERS:
        raise InputError(f"unknown analyzer {name!r}; known: {sorted(ANALYZERS)}")
    cls = ANALYZERS[name]
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise InputError(f"analyzer {name!r} has no option(s) {unknown}; known: {sorted(known) or 'none'}")
    try:
        return TypeAdapter(cls).validate_python(dict(options))
    except ValidationError as e:
        raise InputError(f"analyzer {name!r}: {describe_errors(e, cls)}") from None


def typed_analyzer_options(name: str, options: dict[str, Any]) -> dict[str, Any]:
    """`options` checked by building the analyzer, each given key with its typed value (JSON-ready)."""
    analyzer = make_analyzer(name, **options)
    typed = {key: getattr(analyzer, key) for key in options}
    return {k: list(v) if isinstance(v, tuple) else v for k, v in typed.items()}


def analyzer_from_config(config: dict[str, Any]) -> Analyzer:
    if "name" not in config:
        raise InputError(f"analyzer config has no 'name': {config!r}")
    options = dict(config)
    return make_analyzer(options.pop("name"), **options)
