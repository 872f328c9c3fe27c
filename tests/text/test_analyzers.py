import json
import os
import unicodedata

import pytest

from odqa.errors import InputError
from odqa.text.analyzers import ANALYZERS, analyzer_from_config, get_kiwi, make_analyzer


def test_kiwi_strips_particles_and_endings():
    kiwi = make_analyzer("kiwi")
    terms = kiwi.analyze(["서울은 크다", "서울의 인구", "서울에서 살았다"])
    for t in terms:
        assert "서울" in t
    flat = {term for t in terms for term in t}
    assert not flat & {"은", "의", "에서", "었", "다"}, flat
    assert "서울은" not in flat and "서울에서" not in flat


def test_kiwi_pos_filter_is_configurable():
    nouns_only = make_analyzer("kiwi", pos=["NNP"])
    assert nouns_only.analyze(["이순신은 조선의 무신이었다"]) == [["이순신", "조선"]]
    content = make_analyzer("kiwi").analyze(["이순신은 조선의 무신이었다"])[0]
    assert {"이순신", "조선", "무신"} <= set(content)


def test_kiwi_keeps_latin_and_numbers_lower_cased():
    terms = make_analyzer("kiwi").analyze(["iPhone 15를 2024년에 샀다"])[0]
    assert {"iphone", "15", "2024"} <= set(terms)


def test_bigrams_stay_inside_words_and_drop_punctuation():
    bigram = make_analyzer("bigram")
    assert bigram.analyze(["대한민국의 수도, 서울!"]) == [["대한", "한민", "민국", "국의", "수도", "서울"]]
    assert bigram.analyze(["집 AB"]) == [["집", "ab"]]
    assert bigram.analyze([""]) == [[]]


def test_nfc_and_lower_case_apply_to_every_analyzer():
    decomposed = unicodedata.normalize("NFD", "서울 Seoul")
    assert decomposed != "서울 Seoul"
    for name in ANALYZERS:
        analyzer = make_analyzer(name)
        assert analyzer.analyze([decomposed]) == analyzer.analyze(["서울 SEOUL"]), name


def test_kiwi_bigram_is_the_union_of_both():
    text = ["대한민국의 수도는 서울이다."]
    union = make_analyzer("kiwi+bigram").analyze(text)[0]
    assert union == make_analyzer("kiwi").analyze(text)[0] + make_analyzer("bigram").analyze(text)[0]


def test_batch_keeps_order_and_matches_one_by_one():
    kiwi = make_analyzer("kiwi")
    texts = [f"{i}번째 문장은 세종대왕이 만든 한글에 관한 것이다" for i in range(50)] + ["", "김치"]
    batched = kiwi.analyze(texts, progress=True)
    assert batched == [kiwi.analyze([t])[0] for t in texts]
    assert batched[0][0] == "0" and batched[-1] == ["김치"] and batched[-2] == []


@pytest.mark.parametrize(
    "name, options",
    [("whitespace", {}), ("bigram", {}), ("kiwi", {"pos": ["NNG", "NNP"]}), ("kiwi+bigram", {"pos": "N,V"})],
)
def test_config_round_trips_through_json(name, options):
    analyzer = make_analyzer(name, **options)
    config = json.loads(json.dumps(analyzer.config()))
    assert config["name"] == name
    restored = analyzer_from_config(config)
    assert restored == analyzer
    assert restored.analyze(["한국어 위키백과의 문서들"]) == analyzer.analyze(["한국어 위키백과의 문서들"])


def test_thread_count_is_not_part_of_the_config():
    assert make_analyzer("kiwi", num_workers=1).config() == make_analyzer("kiwi", num_workers=2).config()
    assert get_kiwi() is get_kiwi(os.cpu_count())  # loaded once per process, -1 meaning all cores


@pytest.mark.parametrize(
    "build",
    [
        lambda: make_analyzer("mecab"),
        lambda: make_analyzer("bigram", pos=["N"]),
        lambda: make_analyzer("kiwi", pos=[]),
        lambda: make_analyzer("kiwi", num_workers=0),
        lambda: analyzer_from_config({"pos": ["N"]}),
    ],
)
def test_bad_analyzer_settings_are_input_errors(build):
    with pytest.raises(InputError):
        build()


def test_term_ids_round_trip_and_keep_order():
    from odqa.text.analyzers import TermIds

    analyzed = [["서울", "수도", "서울"], [], ["한강"]]
    chunk = TermIds.from_terms(analyzed)
    assert chunk.terms == ["서울", "수도", "한강"] and chunk.ids.tolist() == [0, 1, 0, 2]
    assert chunk.offsets.tolist() == [0, 3, 3, 4] and len(chunk) == 3
    assert chunk.to_terms() == analyzed


@pytest.mark.parametrize(("name", "num_threads"), [("bigram", 1), ("bigram", 2), ("kiwi+bigram", 2)])
def test_chunked_analysis_equals_one_call(name, num_threads):
    """Chunks, analyzed here or in worker processes (Kiwi on one thread each), come back in text order
    with the terms one analyze() call gives."""
    from odqa.text.analyzers import analyze_in_chunks

    analyzer = make_analyzer(name)
    texts = [f"{i}번째 문장은 세종대왕이 만든 한글에 관한 것이다" for i in range(23)] + ["", "김치 Seoul"]
    chunks = list(analyze_in_chunks(analyzer, iter(texts), chunk_size=4, num_threads=num_threads))
    assert [len(c) for c in chunks] == [4] * 6 + [1]
    assert [terms for c in chunks for terms in c.to_terms()] == analyzer.analyze(texts)


def test_chunked_analysis_refuses_a_bad_chunk_size():
    from odqa.text.analyzers import analyze_in_chunks

    with pytest.raises(InputError, match="chunk_size"):
        list(analyze_in_chunks(make_analyzer("bigram"), ["a"], chunk_size=0))


@pytest.mark.parametrize(
    ("cpu_max", "cap"), [("max 100000\n", None), ("150000 100000\n", 2), ("50000 100000", 1)]
)
def test_available_cpus_honours_a_cgroup_quota(tmp_path, monkeypatch, cpu_max, cap):
    """A pod's CPU limit (cgroup v2 cpu.max), not the node's core count, bounds the worker processes."""
    import odqa.text.analyzers as analyzers

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)))
    (tmp_path / "cpu.max").write_text(cpu_max)
    monkeypatch.setattr(analyzers, "CGROUP_CPU_MAX", tmp_path / "cpu.max")
    assert analyzers.available_cpus() == (cap or 64)
    assert analyzers.resolve_num_threads(0) == (cap or 64) and analyzers.resolve_num_threads(3) == 3
    monkeypatch.setattr(analyzers, "CGROUP_CPU_MAX", tmp_path / "missing")
    assert analyzers.available_cpus() == 64
