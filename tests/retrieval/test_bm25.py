import argparse
import json

import bm25s
import numpy as np
import pytest

from odqa.cli import retrieval as retrieval_cli
from odqa.config import parse_assignments
from odqa.data import load_documents, load_qa, write_qa
from odqa.data.korquad import KorquadSplitConfig, prepare_korquad
from odqa.errors import InputError
from odqa.io import read_json, read_jsonl, write_json, write_jsonl
from odqa.retrieval.base import build_index, load_retriever
from odqa.retrieval.bm25 import BM25Config, BM25Retriever
from odqa.retrieval.evaluate import evaluate_retrieval
from odqa.retrieval.search import retrieve
from odqa.schema import Passage, QAExample
from odqa.settings import korquad_dev_path

PASSAGES = [
    ("seoul", "서울특별시", "서울은 대한민국의 수도이며 한강이 도시를 가로질러 흐른다."),
    ("yi", "이순신", "이순신은 조선 중기의 무신으로 임진왜란 때 한산도 대첩에서 왜군을 크게 무찔렀다."),
    (
        "kimchi",
        "김치",
        "김치는 배추나 무를 소금에 절이고 고춧가루와 젓갈로 양념하여 발효시킨 한국의 전통 음식이다.",
    ),
    (
        "hangul",
        "한글",
        "한글은 세종대왕이 훈민정음이라는 이름으로 1443년에 창제하여 1446년에 반포한 문자이다.",
    ),
    ("jeju", "제주도", "제주도는 대한민국에서 가장 큰 섬으로 한라산이 섬 가운데에 솟아 있다."),
]
QUESTIONS = {
    "대한민국의 수도는 어디인가?": "seoul",
    "임진왜란 때 한산도에서 왜군을 무찌른 조선의 무신은?": "yi",
    "배추를 소금에 절여 발효시킨 음식은?": "kimchi",
    "세종대왕이 창제한 문자는?": "hangul",
    "한라산이 있는 섬은?": "jeju",
}


@pytest.fixture
def passages_path(tmp_path):
    path = tmp_path / "passages.jsonl"
    write_jsonl(path, (Passage(f"{d}-0", d, title, text).to_dict() for d, title, text in PASSAGES))
    return path


@pytest.fixture
def index_dir(tmp_path, passages_path):
    return build_index("bm25", {}, passages_path, tmp_path / "index")


@pytest.mark.parametrize("analyzer", ["bigram", "kiwi", "kiwi+bigram"])
def test_right_passage_ranks_first(tmp_path, passages_path, analyzer):
    retriever = BM25Retriever.build(BM25Config(analyzer=analyzer), passages_path, tmp_path / analyzer)
    hits = retriever.search(list(QUESTIONS), top_k=3)
    assert [h[0].document_id for h in hits] == list(QUESTIONS.values())
    for question_hits in hits:
        scores = [h.score for h in question_hits]
        assert scores == sorted(scores, reverse=True) and scores[0] > scores[1]


def test_save_load_round_trip_gives_identical_results(index_dir, passages_path):
    saved = read_json(index_dir / "retriever.json")
    assert saved["kind"] == "bm25" and saved["analyzer"] == "kiwi+bigram" and saved["num_passages"] == 5
    loaded = load_retriever(index_dir)
    assert isinstance(loaded, BM25Retriever) and loaded.config == BM25Config()
    fresh = BM25Retriever.build(BM25Config(), passages_path, index_dir.parent / "again")
    queries = list(QUESTIONS) + ["전혀 관계없는 zzz 질문"]
    assert loaded.search(queries, top_k=5) == fresh.search(queries, top_k=5)


def test_index_folders_written_before_0_2_still_load(index_dir):
    """Old retriever.json said "type" for the kind and passages.jsonl said "doc_id"."""
    saved = read_json(index_dir / "retriever.json")
    write_json(index_dir / "retriever.json", {"type": saved.pop("kind"), **saved})
    passages = read_jsonl(index_dir / "passages.jsonl")
    write_jsonl(index_dir / "passages.jsonl", ({"doc_id": p.pop("document_id"), **p} for p in passages))
    hits = load_retriever(index_dir).search(list(QUESTIONS), top_k=1)
    assert [h[0].document_id for h in hits] == list(QUESTIONS.values())


def test_options_reach_the_index(tmp_path, passages_path):
    options = parse_assignments(
        ["k1=0.9", "b=0.4", "title_prefix=false", 'analyzer_options={"pos": ["NNP", "NNG"]}']
    )
    assert options == {
        "k1": 0.9,
        "b": 0.4,
        "title_prefix": False,
        "analyzer_options": {"pos": ["NNP", "NNG"]},
    }
    retriever = load_retriever(
        build_index("bm25", {**options, "analyzer": "kiwi"}, passages_path, tmp_path / "i")
    )
    assert (retriever.model.k1, retriever.model.b) == (0.9, 0.4)
    assert retriever.analyzer.pos == ("NNP", "NNG")
    # without the title prefix, a title-only word finds nothing ("특별시" is only in the title)
    assert retriever.search(["특별시"], top_k=1)[0][0].score == 0.0


def test_top_k_larger_than_corpus_returns_every_passage(index_dir):
    hits = load_retriever(index_dir).search(["한국의 전통 음식", "zzz"], top_k=100)
    assert [len(h) for h in hits] == [5, 5]
    assert {h.document_id for h in hits[0]} == {d for d, _, _ in PASSAGES}
    with pytest.raises(InputError):
        load_retriever(index_dir).search(["김치"], top_k=0)


def test_search_tokens_is_the_lean_path_of_search(index_dir):
    retriever = load_retriever(index_dir)
    tokens = retriever.analyze_queries(list(QUESTIONS))
    indices, scores = retriever.search_tokens(tokens, top_k=2)
    assert indices.shape == scores.shape == (5, 2)
    assert retriever.hits(indices, scores) == retriever.search(list(QUESTIONS), top_k=2)


def test_bad_index_folders_are_input_errors(tmp_path, index_dir):
    with pytest.raises(InputError, match="not an odqa index folder"):
        load_retriever(tmp_path / "nowhere")
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / "retriever.json").write_text('{"kind": "lucene"}')
    with pytest.raises(InputError, match="unknown retriever kind"):
        load_retriever(tmp_path / "odd")
    (tmp_path / "odd" / "retriever.json").write_text('{"kind": "bm25", "k1": 1.2, "colour": "red"}')
    with pytest.raises(InputError, match="colour"):
        load_retriever(tmp_path / "odd")
    for damaged in (index_dir / "bm25s" / "vocab.index.json", index_dir / "passages.jsonl"):
        damaged.rename(damaged.with_suffix(".gone"))
        with pytest.raises(InputError):
            load_retriever(index_dir)
        damaged.with_suffix(".gone").rename(damaged)
    load_retriever(index_dir)


def test_bad_build_input_is_an_input_error(tmp_path, passages_path):
    with pytest.raises(InputError, match="no option"):
        build_index("bm25", {"k3": 1.0}, passages_path, tmp_path / "i")
    with pytest.raises(InputError, match="unknown analyzer"):
        build_index("bm25", {"analyzer": "mecab"}, passages_path, tmp_path / "i")
    with pytest.raises(InputError, match="unknown retriever kind"):
        build_index("lucene", {}, passages_path, tmp_path / "i")
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(InputError, match="no passages"):
        build_index("bm25", {}, tmp_path / "empty.jsonl", tmp_path / "i")
    (tmp_path / "bad.jsonl").write_text('{"passage_id": "a-0", "document_id": "a"}\n')
    with pytest.raises(InputError, match=r"bad.jsonl \[record passage 1\].*text"):
        build_index("bm25", {}, tmp_path / "bad.jsonl", tmp_path / "i")
    with pytest.raises(InputError, match="key=value"):
        parse_assignments(["k1"])
    assert not (tmp_path / "i").exists()


def test_failed_rebuild_keeps_the_old_index(index_dir, passages_path, monkeypatch):
    before = load_retriever(index_dir).search(["김치"], top_k=5)

    def broken_write(*args, **kwargs):
        raise OSError("disk full")

    # fails after the new bm25s arrays are written, while passages.jsonl is
    monkeypatch.setattr("odqa.retrieval.bm25.write_jsonl", broken_write)
    with pytest.raises(OSError):
        build_index("bm25", {"analyzer": "bigram"}, passages_path, index_dir)
    assert read_json(index_dir / "retriever.json")["analyzer"] == "kiwi+bigram"
    assert load_retriever(index_dir).search(["김치"], top_k=5) == before
    assert [p.name for p in index_dir.parent.iterdir() if p.name.startswith(".")] == []


def test_cli_index_retrieve_and_eval(tmp_path, passages_path, capsys):
    qa_path = tmp_path / "qa.jsonl"
    write_qa(
        qa_path,
        [QAExample(id=f"q{i}", question=q, document_id=d) for i, (q, d) in enumerate(QUESTIONS.items())],
    )
    parser = argparse.ArgumentParser()
    retrieval_cli.add_commands(parser.add_subparsers())

    def run(*argv):
        args = parser.parse_args(list(argv))
        assert args.func(args) == 0

    run("index", "--kind", "bm25", "--passages", str(passages_path), "--out", str(tmp_path / "ix"),
        "--analyzer", "bigram", "--option", "k1=1.2")  # fmt: skip
    assert read_json(tmp_path / "ix" / "retriever.json")["analyzer"] == "bigram"
    assert read_json(tmp_path / "ix" / "retriever.json")["k1"] == 1.2
    run("retrieve", "--index", str(tmp_path / "ix"), "--data", str(qa_path), "--top-k", "2",
        "--out", str(tmp_path / "retrieved.jsonl"))  # fmt: skip
    lines = read_jsonl(tmp_path / "retrieved.jsonl")
    assert [line["id"] for line in lines] == ["q0", "q1", "q2", "q3", "q4"]
    assert set(lines[0]["passages"][0]) == {"passage_id", "document_id", "title", "text", "score"}
    assert [len(line["passages"]) for line in lines] == [2] * 5
    capsys.readouterr()
    run("eval-retrieval", "--retrieved", str(tmp_path / "retrieved.jsonl"), "--data", str(qa_path),
        "--out", str(tmp_path / "eval"))  # fmt: skip
    printed = json.loads(capsys.readouterr().out)
    assert printed["by_document"]["recall@1"] == 1.0 and printed["by_document"]["total"] == 5
    assert (tmp_path / "eval" / "recall_at_k.png").read_bytes()[:4] == b"\x89PNG"


@pytest.fixture(scope="module")
def korquad_open_domain(tmp_path_factory):
    """All unique KorQuAD dev paragraphs as passages; every question, with its gold paragraph."""
    work = tmp_path_factory.mktemp("korquad")
    split = prepare_korquad(KorquadSplitConfig(), korquad_dev_path(), work / "split")
    passages_path = work / "passages.jsonl"
    documents = load_documents(split.documents_path)
    write_jsonl(
        passages_path,
        (Passage(f"{d.document_id}-0", d.document_id, d.title, d.text).to_dict() for d in documents),
    )
    questions = load_qa(split.train_path).examples + load_qa(split.eval_path).examples
    return passages_path, questions, work


@pytest.mark.integration
def test_kiwi_bigram_bm25_recall_on_korquad_open_domain(korquad_open_domain):
    passages_path, questions, work = korquad_open_domain
    assert len(questions) == 5774 and len(read_jsonl(passages_path)) == 961
    index_dir = build_index("bm25", {"analyzer": "kiwi+bigram"}, passages_path, work / "index")
    qa_path = work / "slice.jsonl"
    write_qa(qa_path, questions[::10])  # 578 questions from every article
    retrieved = retrieve(index_dir, qa_path, work / "retrieved.jsonl", top_k=20)
    metrics = evaluate_retrieval(retrieved, qa_path, work / "eval")
    assert metrics["questions"] == 578 and metrics["depth"] == 20
    assert metrics["by_document"]["recall@20"] >= 0.98
    assert metrics["by_document"]["recall@1"] >= 0.85
    assert metrics["by_answer"]["recall@20"] >= metrics["by_document"]["recall@20"] - 0.01


@pytest.mark.parametrize("method", ["lucene", "bm25+"])
def test_batched_scoring_matches_bm25s(tmp_path, passages_path, method):
    retriever = BM25Retriever.build(
        BM25Config(analyzer="bigram", method=method), passages_path, tmp_path / "i"
    )
    tokens = retriever.analyze_queries(list(QUESTIONS) + ["대한민국 대한민국 한국", "zzz", ""])
    indices, scores = retriever.search_tokens(tokens, top_k=5)
    raw = retriever.model.retrieve(tokens, k=5, show_progress=False)  # the whole corpus: no ties at the cut
    np.testing.assert_allclose(scores, raw.scores, rtol=1e-5, atol=1e-6)
    for row in range(len(tokens)):  # each passage gets the same score (ties may be ordered differently)
        ours = dict(zip(indices[row].tolist(), scores[row].tolist(), strict=True))
        theirs = dict(zip(raw.documents[row].tolist(), raw.scores[row].tolist(), strict=True))
        assert ours == pytest.approx(theirs, rel=1e-5, abs=1e-6)
    assert scores[0, 0] > scores[0, 1] > 0 and scores[-2:].max() == 0.0


def _columns(model) -> dict[str, tuple[list[int], list[float]]]:
    """term -> (passage indices, scores) of a bm25s model: comparable whatever ids its terms got."""
    data, rows, indptr = (np.asarray(model.scores[k]) for k in ("data", "indices", "indptr"))
    return {
        term: (rows[indptr[i] : indptr[i + 1]].tolist(), data[indptr[i] : indptr[i + 1]].tolist())
        for term, i in model.vocab_dict.items()
        if term
    }


@pytest.mark.parametrize(("method", "num_threads"), [("lucene", 1), ("bm25+", 2)])
def test_chunked_build_equals_bm25s_index(tmp_path, korquad_articles, method, num_threads):
    """The streaming build (chunks of 5 passages, in 1 or 2 processes) gives bm25s's own index, score
    for score and bit for bit, and saves it where bm25s.BM25.load reads it."""
    passages_path, _, passages = korquad_articles(tmp_path, 6)
    config = BM25Config(analyzer="bigram", method=method, chunk_size=5, num_threads=num_threads)
    retriever = BM25Retriever.build(config, passages_path, tmp_path / "index")
    texts = [f"{p.title}\n{p.text}" for p in passages]
    assert len(texts) > 4 * 5
    reference = bm25s.BM25(k1=config.k1, b=config.b, method=method)
    reference.index(config.make_analyzer().analyze(texts), show_progress=False)
    assert _columns(retriever.model) == _columns(reference)
    if method == "bm25+":
        ours = dict(
            zip(retriever.model.vocab_dict, retriever.model.nonoccurrence_array.tolist(), strict=False)
        )
        theirs = {t: reference.nonoccurrence_array[i] for t, i in reference.vocab_dict.items() if t}
        assert ours == theirs
    assert not (tmp_path / "index" / "bm25s" / ".chunks").exists()  # the spilled chunks are gone


def test_index_loads_memory_mapped_and_old_bm25s_saves_still_load(tmp_path, passages_path, index_dir):
    loaded = load_retriever(index_dir)
    assert isinstance(loaded.model.scores["data"], np.memmap)
    assert np.shares_memory(loaded._term_scores.indices, loaded.model.scores["indices"])  # not copied
    queries = list(QUESTIONS) + ["zzz"]
    expected = loaded.search(queries, top_k=5)
    # An index folder built before the streaming build: bm25s's own index() and save().
    config = BM25Config()
    old = bm25s.BM25(k1=config.k1, b=config.b, method=config.method)
    texts = [f"{title}\n{text}" for _, title, text in PASSAGES]
    old.index(config.make_analyzer().analyze(texts), show_progress=False)
    import shutil

    shutil.rmtree(index_dir / "bm25s")
    old.save(str(index_dir / "bm25s"), show_progress=False)
    # same ranking; scores equal up to float32 summation order (bm25s numbers terms in set order)
    for ours, theirs in zip(load_retriever(index_dir).search(queries, top_k=5), expected, strict=True):
        assert [h.passage_id for h in ours] == [h.passage_id for h in theirs]
        assert [h.score for h in ours] == pytest.approx([h.score for h in theirs], rel=1e-6)
