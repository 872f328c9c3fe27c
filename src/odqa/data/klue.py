"""Distractor passages from KLUE dev sets, so retrieval is measured against a larger, noisier corpus.

None of the KLUE sentences answers a KorQuAD question; mixed into the KorQuAD passages they make
open-domain retrieval harder the way a real Wikipedia dump does (more near-topic text to rank past).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field

from odqa.config import StageConfig
from odqa.data.passages import load_passages
from odqa.errors import InputError
from odqa.io import read_json, write_jsonl
from odqa.schema import Passage
from odqa.settings import klue_dir

log = logging.getLogger(__name__)

NLI_FILE = "klue-nli-v1.1_dev.json"
STS_FILE = "klue-sts-v1.1_dev.json"
NER_FILE = "klue-ner-v1.1_dev.tsv"
DOCUMENT_ID_PREFIX = "klue-"

# `<경찰:OG>` -> `경찰`. One dev sentence has a stray `;` before the tag (`<일:;LC>`); plain angle
# brackets in the text (a film title `<레이>`) have no `:TAG` and are kept.
_NER_MARKUP = re.compile(r"<([^<>]+?):;?(PS|LC|OG|DT|TI|QT)>")
# ... and one closes a tag it never opened (`<19:QT>, 20기:QT>`): drop the orphan `:TAG>`.
_ORPHAN_TAG = re.compile(r":;?(PS|LC|OG|DT|TI|QT)>")


class DistractorConfig(StageConfig):
    passage_chars: int = Field(500, ge=1, description="a passage closes once it reaches this many characters")
    include_nli: bool = Field(True, description="use the premises of KLUE NLI dev")
    include_sts: bool = Field(True, description="use the sentences of KLUE STS dev")
    include_ner: bool = Field(True, description="use the sentences of KLUE NER dev")


@dataclass
class SourceSentence:
    dataset: str  # "nli", "sts", "ner"
    source: str  # KLUE's source field, e.g. "wikinews"
    text: str


def strip_ner_markup(tagged: str) -> str:
    return _ORPHAN_TAG.sub("", _NER_MARKUP.sub(r"\1", tagged))


def read_nli_premises(path: Path) -> list[SourceSentence]:
    """Unique premises in file order (each premise appears with three hypotheses)."""
    records = _read_records(path, ("premise", "source"))
    return _unique(SourceSentence("nli", r["source"], r["premise"]) for r in records)


def read_sts_sentences(path: Path) -> list[SourceSentence]:
    records = _read_records(path, ("sentence1", "sentence2", "source"))
    return _unique(
        SourceSentence("sts", r["source"], text) for r in records for text in (r["sentence1"], r["sentence2"])
    )


def read_ner_sentences(path: Path) -> list[SourceSentence]:
    """The `## <guid>\\t<tagged sentence>` comment lines; the source is the guid's suffix."""
    if not path.is_file():
        raise InputError("file not found", path=path)
    sentences = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise InputError("not UTF-8 text: re-encode the file as UTF-8", path=path) from None
    for lineno, line in enumerate(lines, start=1):
        if not line.startswith("## klue-ner"):
            continue
        guid, sep, tagged = line[3:].partition("\t")
        if not sep or "-" not in guid:
            raise InputError(
                "expected '## <guid>-<source>\\t<tagged sentence>'", path=path, record=f"line {lineno}"
            )
        text = strip_ner_markup(tagged).strip()
        if text:
            sentences.append(SourceSentence("ner", guid.rsplit("-", 1)[1], text))
    if not sentences:
        raise InputError("no '## klue-ner...' sentence lines found", path=path)
    return _unique(sentences)


def group_into_passages(sentences: Iterable[SourceSentence], passage_chars: int) -> list[Passage]:
    """Join consecutive sentences of one (dataset, source), in file order, until a passage reaches
    `passage_chars`. Sources interleave in the files, so sentences are first bucketed by source."""
    by_source: dict[tuple[str, str], list[SourceSentence]] = {}
    for sentence in sentences:
        by_source.setdefault((sentence.dataset, sentence.source), []).append(sentence)
    passages: list[Passage] = []
    current: list[SourceSentence] = []
    counters: dict[tuple[str, str], int] = {}

    def close() -> None:
        if not current:
            return
        key = (current[0].dataset, current[0].source)
        n = counters.get(key, 0)
        counters[key] = n + 1
        document_id = f"{DOCUMENT_ID_PREFIX}{key[0]}-{_slug(key[1])}-{n:05d}"
        text = " ".join(s.text for s in current)
        passages.append(
            Passage(passage_id=f"{document_id}-0", document_id=document_id, title="", text=text, start_char=0)
        )
        current.clear()

    for bucket in by_source.values():
        size = 0
        for sentence in bucket:
            current.append(sentence)
            size += len(sentence.text) + (1 if size else 0)
            if size >= passage_chars:
                close()
                size = 0
        close()
    return passages


def build_distractor_passages(config: DistractorConfig, data_dir: str | Path | None = None) -> list[Passage]:
    """Passages from the KLUE dev files in `data_dir` (default: `odqa.settings.klue_dir()`)."""
    root = Path(data_dir) if data_dir is not None else klue_dir()
    sentences: list[SourceSentence] = []
    if config.include_nli:
        sentences += read_nli_premises(root / NLI_FILE)
    if config.include_sts:
        sentences += read_sts_sentences(root / STS_FILE)
    if config.include_ner:
        sentences += read_ner_sentences(root / NER_FILE)
    passages = group_into_passages(sentences, config.passage_chars)
    log.info("built %d KLUE distractor passages from %d sentences", len(passages), len(sentences))
    return passages


def write_corpus_with_distractors(
    config: DistractorConfig,
    passages_path: str | Path,
    out_path: str | Path,
    data_dir: str | Path | None = None,
) -> Path:
    """Write `passages_path`'s passages followed by the KLUE distractors to `out_path` (passages.jsonl)."""
    originals = load_passages(passages_path)
    taken = {p.document_id for p in originals if p.document_id.startswith(DOCUMENT_ID_PREFIX)}
    if taken:
        raise InputError(
            f"document_ids already use the distractor prefix {DOCUMENT_ID_PREFIX!r}", path=passages_path
        )
    distractors = build_distractor_passages(config, data_dir)
    write_jsonl(out_path, (p.to_dict() for p in [*originals, *distractors]))
    log.info(
        "wrote %d passages (%d + %d distractors) to %s",
        len(originals) + len(distractors),
        len(originals),
        len(distractors),
        out_path,
    )
    return Path(out_path)


def _read_records(path: Path, fields: tuple[str, ...]) -> list[dict]:
    data = read_json(path)
    if not isinstance(data, list):
        raise InputError("expected a JSON list of records", path=path)
    for i, record in enumerate(data):
        missing = [f for f in fields if not isinstance(record, dict) or not isinstance(record.get(f), str)]
        if missing:
            raise InputError(f"missing or non-string field(s) {missing}", path=path, record=i)
    return data


def _unique(sentences: Iterable[SourceSentence]) -> list[SourceSentence]:
    seen: set[str] = set()
    out = []
    for s in sentences:
        text = s.text.strip()
        if text and text not in seen:
            seen.add(text)
            out.append(SourceSentence(s.dataset, s.source, text))
    return out


def _slug(source: str) -> str:
    return re.sub(r"[^0-9A-Za-z]+", "_", source).strip("_").lower() or "unknown"
