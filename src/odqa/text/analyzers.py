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
import itertools
import logging
import multiprocessing
import os
import re
import unicodedata
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar

import numpy as np
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


# ---------------------------------------------------------------- corpus-scale analysis

DEFAULT_CHUNK_SIZE = 4096  # texts per chunk: a few MB of terms in flight per process
CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")  # cgroup v2: "<quota> <period>" or "max <period>"


@dataclass
class TermIds:
    """A chunk of analyzed texts as compact arrays instead of Python lists of strings (which cost about
    60 bytes a term): text i's terms are `terms[ids[offsets[i]:offsets[i + 1]]]`, in order, repeats kept.
    `terms` is the chunk's own vocabulary, in order of first appearance."""

    terms: list[str]
    ids: np.ndarray  # int32
    offsets: np.ndarray  # int64, one more than the texts

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @classmethod
    def from_terms(cls, analyzed: list[list[str]]) -> TermIds:
        vocab: dict[str, int] = {}
        lookup = vocab.setdefault
        flat = [lookup(t, len(vocab)) for terms in analyzed for t in terms]
        offsets = np.zeros(len(analyzed) + 1, dtype=np.int64)
        np.cumsum([len(terms) for terms in analyzed], out=offsets[1:])
        return cls(list(vocab), np.asarray(flat, dtype=np.int32), offsets)

    def to_terms(self) -> list[list[str]]:
        terms = self.terms
        ids = self.ids.tolist()
        return [[terms[i] for i in ids[a:b]] for a, b in itertools.pairwise(self.offsets.tolist())]


def _analyze_chunk(config: dict[str, Any], texts: list[str]) -> TermIds:
    """Worker side of analyze_in_chunks: one analyzer per process (Kiwi on one thread: the processes
    are the parallelism), cached across chunks."""
    return TermIds.from_terms(_worker_analyzer(tuple(sorted(_hashable(config).items()))).analyze(texts))


def _hashable(config: dict[str, Any]) -> dict[str, Any]:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in config.items()}


@functools.lru_cache(maxsize=2)
def _worker_analyzer(items: tuple) -> Analyzer:
    options = dict(items)
    name = options.pop("name")
    if "num_workers" in {f.name for f in dataclasses.fields(ANALYZERS[name])}:
        options["num_workers"] = 1
    return make_analyzer(name, **options)


def available_cpus() -> int:
    """Cores this process may use: its CPU affinity, capped by a cgroup v2 CPU quota (a Kubernetes pod's
    CPU limit), which os.cpu_count() ignores: a pod limited to 2 cores on a 64-core node must not start
    64 analysis processes."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    try:
        quota, period = CGROUP_CPU_MAX.read_text(encoding="ascii").split()[:2]
        if quota != "max":
            cpus = min(cpus, max(1, int(int(quota) / int(period) + 0.5)))
    except (OSError, ValueError):
        pass
    return max(1, cpus)


def resolve_num_threads(num_threads: int) -> int:
    """Worker processes to use: 0 means every available core (available_cpus); 1 inside a daemonic
    process (a multiprocessing.Pool worker), which may not start processes of its own."""
    if multiprocessing.current_process().daemon:
        return 1
    return num_threads if num_threads > 0 else available_cpus()


def analyze_in_chunks(
    analyzer: Analyzer,
    texts: Iterable[str],
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    num_threads: int = 1,
    progress: bool = False,
    total: int | None = None,
) -> Iterator[TermIds]:
    """Analyze a corpus `chunk_size` texts at a time, yielding each chunk's TermIds in text order, so a
    caller never holds the whole corpus's terms. With num_threads > 1 (0: every core) the chunks are
    analyzed by that many worker processes (Python-level work such as bigrams and Kiwi's result
    handling holds the GIL, so processes scale where threads do not); at most two chunks per process
    are in flight. A corpus of one chunk is analyzed here, without starting processes."""
    if chunk_size < 1:
        raise InputError(f"chunk_size must be at least 1, got {chunk_size}")
    workers = resolve_num_threads(num_threads)
    chunks = _chunked(texts, chunk_size)
    bar = progress_bar(total=total, desc=f"analyze ({analyzer.name})", unit="text", disable=not progress)
    try:
        first = next(chunks, None)
        if first is None:
            return
        second = next(chunks, None)
        if second is None or workers == 1:
            for chunk in itertools.chain([first], [second] if second is not None else [], chunks):
                yield TermIds.from_terms(analyzer.analyze(chunk))
                bar.update(len(chunk))
            return
        config = analyzer.config()
        # spawn, not fork: the parent may hold threads (Kiwi, torch, OpenMP) that fork would copy mid-state.
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            pending: deque[tuple[Future, int]] = deque()
            for chunk in itertools.chain([first, second], chunks):
                pending.append((pool.submit(_analyze_chunk, config, chunk), len(chunk)))
                if len(pending) >= 2 * workers:
                    future, n = pending.popleft()
                    yield future.result()
                    bar.update(n)
            while pending:
                future, n = pending.popleft()
                yield future.result()
                bar.update(n)
    finally:
        bar.close()


def _chunked(texts: Iterable[str], size: int) -> Iterator[list[str]]:
    iterator = iter(texts)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk
