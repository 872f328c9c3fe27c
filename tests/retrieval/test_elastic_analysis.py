"""The Elasticsearch analysis chain as deployed, run on Lucene itself.

`index_settings()` is the body odqa sends to Elasticsearch. Here it is translated factory by factory into
Lucene's own analysis factories (nori tokenizer, part-of-speech stop, reading form, lowercase, shingle) and
run by a small Java program on Debian's Lucene 8 jars (`make test` installs liblucene8-java), so what the
analyzers emit is Lucene's behaviour, not a model of it. Elasticsearch 8 runs Lucene 9; the nori and
shingle factories behave the same for these settings.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from odqa.retrieval.elastic import ANALYZER, SHINGLE_ANALYZER, ElasticsearchConfig, index_settings

pytestmark = pytest.mark.integration  # compiles and starts a JVM

JARS = [
    Path("/usr/share/java/lucene-core-8.7.0.jar"),
    Path("/usr/share/java/lucene-analyzers-common-8.7.0.jar"),
    Path("/usr/share/java/lucene-analyzers-nori-8.7.0.jar"),
]
HARNESS = Path(__file__).parent / "lucene" / "AnalyzeChain.java"
FIXTURE = Path(__file__).parents[1] / "fixtures" / "tiny_documents.json"

# Elasticsearch type -> Lucene factory name, and the parameter names that differ.
_FACTORIES = {
    "nori_tokenizer": (
        "korean",
        {"decompound_mode": "decompoundMode", "discard_punctuation": "discardPunctuation"},
    ),
    "nori_part_of_speech": ("koreanPartOfSpeechStop", {"stoptags": "tags"}),
    "shingle": (
        "shingle",
        {
            "min_shingle_size": "minShingleSize",
            "max_shingle_size": "maxShingleSize",
            "output_unigrams": "outputUnigrams",
            "filler_token": "fillerToken",
        },
    ),
}
Token = tuple[str, int, int, int, int]  # term, position increment, position length, start, end offset
_BUILT_IN_FILTERS = {"nori_readingform": "koreanReadingForm", "lowercase": "lowercase"}


def _factory_args(kind: str, definition: dict) -> list[str]:
    if definition["type"] not in _FACTORIES:
        raise AssertionError(f"no Lucene translation for {kind} type {definition['type']!r}: add it here")
    name, renames = _FACTORIES[definition["type"]]
    args = [f"{kind}:{name}"]
    for key, value in definition.items():
        if key == "type":
            continue
        if key not in renames:
            raise AssertionError(f"no Lucene translation for {definition['type']} parameter {key!r}")
        if isinstance(value, bool):
            value = str(value).lower()
        elif isinstance(value, list):
            value = ",".join(value)
        args.append(f"{renames[key]}={value}")
    return args


def lucene_args(settings: dict, analyzer: str) -> list[str]:
    """The Java harness's arguments for one analyzer of an index `settings` body."""
    analysis = settings["index"]["analysis"]
    spec = analysis["analyzer"][analyzer]
    args = _factory_args("tokenizer", analysis["tokenizer"][spec["tokenizer"]])
    for name in spec["filter"]:
        if name in analysis.get("filter", {}):
            args += _factory_args("filter", analysis["filter"][name])
        elif name in _BUILT_IN_FILTERS:
            args.append(f"filter:{_BUILT_IN_FILTERS[name]}")
        else:
            raise AssertionError(f"no Lucene translation for filter {name!r}")
    return args


@pytest.fixture(scope="module")
def analyze(tmp_path_factory):
    missing = [str(j) for j in JARS if not j.exists()]
    if missing or not shutil.which("javac"):
        pytest.skip(
            f"Lucene's nori needs Debian's liblucene8-java and a JDK (make test installs them): {missing}"
        )
    classes = tmp_path_factory.mktemp("lucene")
    classpath = ":".join(str(j) for j in JARS)
    subprocess.run(["javac", "-cp", classpath, "-d", str(classes), str(HARNESS)], check=True)

    def run(settings: dict, analyzer: str, texts: list[str]) -> list[list[Token]]:
        out = subprocess.run(
            ["java", "-cp", f"{classpath}:{classes}", "AnalyzeChain", *lucene_args(settings, analyzer)],
            input="\n".join(texts) + "\n",
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        streams: list[list[Token]] = [[]]
        for line in out.split("\n")[:-1]:
            if not line:
                streams.append([])
                continue
            term, *numbers = line.rsplit("\t", 4)
            streams[-1].append((term[1:-1], *map(int, numbers)))
        return streams[: len(texts)]

    return run


def _texts() -> list[str]:
    documents = json.loads(FIXTURE.read_text(encoding="utf-8"))
    return [d["text"] for d in documents.values()]


def shingle_problems(tokens: list[Token]) -> list[str]:
    """Bigrams with a missing half: ShingleFilter fills a position gap (a removed particle) with its filler."""
    problems = []
    for term, *_ in tokens:
        parts = term.split(" ")
        if len(parts) != 2 or not all(p.strip() and p != "_" for p in parts):
            problems.append(f"half-empty {term!r}")
    return problems


def stream_problems(tokens: list[Token]) -> list[str]:
    """What ShingleFilter must not be fed: a token stacked on another (a compound beside its parts pairs
    with its own part, "훈민정음 훈민") or a position gap."""
    problems = []
    for term, increment, length, *_ in tokens:
        if increment == 0 or length != 1:
            problems.append(f"stacked {term!r}")
        elif increment > 1:
            problems.append(f"gap before {term!r}")
    return problems


def without_shingle(settings: dict, analyzer: str) -> dict:
    """The same settings with a copy of `analyzer` that stops before its shingle filter, named "<analyzer>_in"."""
    copy = json.loads(json.dumps(settings))
    analysis = copy["index"]["analysis"]
    spec = analysis["analyzer"][analyzer]
    shingles = [f for f in spec["filter"] if analysis.get("filter", {}).get(f, {}).get("type") == "shingle"]
    assert shingles and spec["filter"][-1] == shingles[0]
    analysis["analyzer"][f"{analyzer}_in"] = {**spec, "filter": spec["filter"][:-1]}
    return copy


def test_shingle_analyzer_emits_only_whole_word_bigrams(analyze):
    settings = index_settings(ElasticsearchConfig(shingle=True))
    streams = analyze(settings, SHINGLE_ANALYZER, _texts())
    tokens = [t for stream in streams for t in stream]
    assert len(tokens) > 100
    assert shingle_problems(tokens) == []
    fed = analyze(without_shingle(settings, SHINGLE_ANALYZER), f"{SHINGLE_ANALYZER}_in", _texts())
    assert [p for stream in fed for p in stream_problems(stream)] == []
    terms = {t[0] for t in tokens}
    assert {"훈민 정음", "세종 은"} <= terms  # a compound's parts, and a word with its particle


def test_the_check_catches_the_old_chain(analyze):
    """The chain odqa shipped before (mixed compounds, particles removed before shingling, empty filler):
    many of its bigrams are half-empty and it feeds stacked tokens and gaps to the shingles, so the checks
    above can fail."""
    settings = index_settings(ElasticsearchConfig(shingle=False))
    analysis = settings["index"]["analysis"]
    analysis["tokenizer"]["odqa_nori"]["decompound_mode"] = "mixed"
    analysis["filter"]["old_shingle"] = {
        "type": "shingle",
        "min_shingle_size": 2,
        "max_shingle_size": 2,
        "output_unigrams": False,
        "filler_token": "",
    }
    analysis["analyzer"]["old"] = {
        "tokenizer": "odqa_nori",
        "filter": [*analysis["analyzer"][ANALYZER]["filter"], "old_shingle"],
    }
    tokens = [t for stream in analyze(settings, "old", _texts()) for t in stream]
    assert len(shingle_problems(tokens)) > len(tokens) / 4
    fed = analyze(without_shingle(settings, "old"), "old_in", _texts())
    problems = [p for stream in fed for p in stream_problems(stream)]
    assert any(p.startswith("stacked") for p in problems)
    assert any(p.startswith("gap") for p in problems)


def test_main_analyzer_drops_particles_and_keeps_content(analyze):
    settings = index_settings(ElasticsearchConfig())
    (tokens,) = analyze(settings, ANALYZER, ["세종은 조선의 제4대 왕으로, 1443년 훈민정음을 창제하였다."])
    terms = [t[0] for t in tokens]
    assert "세종" in terms and "훈민정음" in terms
    assert not {"은", "의", "을", "으로"} & set(terms)
