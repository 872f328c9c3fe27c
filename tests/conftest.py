"""Shared fixtures: real KorQuAD (from odqa.settings) and tiny hand-written Korean data.

tests/fixtures/ (written for these tests, not copied from any data set):
- tiny_documents.json: `wikipedia_documents.json` layout, ids "0".."7"; "3" has wiki markup, "4" is an
  exact copy of "1", "5" a near copy of "2", "6" is blank, "7" is the longest (375 chars).
- tiny_qa.jsonl: 10 flat questions (ids tiny-0..tiny-9) whose `context` is the raw document text and
  `document_id` the document id.
- tiny_squad.json: SQuAD layout, 4 articles; one paragraph without questions, one paragraph twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from odqa.settings import KORQUAD_HINT, korquad_dev_path

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def korquad_path() -> Path:
    """Real KorQuAD 1.0 dev; fails (not skips) when it is missing, saying where to get it."""
    path = korquad_dev_path(required=False)
    if not path.is_file():
        pytest.fail(f"KorQuAD 1.0 dev not found at {path}. {KORQUAD_HINT}", pytrace=False)
    return path


@pytest.fixture(scope="session")
def tiny_qa() -> Path:
    return FIXTURES / "tiny_qa.jsonl"


@pytest.fixture(scope="session")
def tiny_documents() -> Path:
    return FIXTURES / "tiny_documents.json"


@pytest.fixture(scope="session")
def tiny_squad() -> Path:
    return FIXTURES / "tiny_squad.json"


@pytest.fixture(scope="session")
def tiny_passages(tmp_path_factory, tiny_documents):
    """PreprocessResult for tiny_documents with default settings (5 passages, 2 aliases)."""
    from odqa.preprocess import PreprocessConfig, preprocess

    return preprocess(PreprocessConfig(), tiny_documents, tmp_path_factory.mktemp("tiny") / "passages")


@pytest.fixture(scope="session")
def korquad_split(tmp_path_factory, korquad_path):
    """KorquadSplit of real KorQuAD dev (default config): documents/train/eval paths. About 0.3 s."""
    from odqa.data.korquad import KorquadSplitConfig, prepare_korquad

    return prepare_korquad(KorquadSplitConfig(), korquad_path, tmp_path_factory.mktemp("korquad") / "split")


@pytest.fixture(scope="session")
def korquad_passages(tmp_path_factory, korquad_split):
    """PreprocessResult over the KorQuAD split's documents (957 documents, 1005 passages). About 1 s."""
    from odqa.preprocess import PreprocessConfig, preprocess

    return preprocess(
        PreprocessConfig(), korquad_split.documents_path, tmp_path_factory.mktemp("korquad") / "passages"
    )


@pytest.fixture(scope="module")
def torch_one_thread():
    """torch and FAISS on one thread for a module, the previous counts restored after it: the settings
    are process-wide (DenseRetriever.build/load set them too), so one module must not leave them to
    the modules after it. Use with `pytestmark = pytest.mark.usefixtures("torch_one_thread")`."""
    import faiss
    import torch

    before = torch.get_num_threads(), faiss.omp_get_max_threads()
    torch.set_num_threads(1)
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before[0])
        faiss.omp_set_num_threads(before[1])


@pytest.fixture
def run_cli(monkeypatch, capsys):
    """Run `odqa ARGS...` in-process through odqa.cli.main with only the named command modules
    loaded (others may not exist yet); returns (exit code, stdout, stderr)."""
    import odqa.cli

    def run(argv: list[str], modules: tuple[str, ...] = ("data", "evaluate")) -> tuple[int, str, str]:
        monkeypatch.setattr(odqa.cli, "COMMAND_MODULES", list(modules))
        capsys.readouterr()
        rc = odqa.cli.main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return rc, out, err

    return run


def write_korquad_articles(root: Path, n_articles: int) -> tuple[Path, Path, list]:
    """passages.jsonl (one passage per paragraph) and qa.jsonl (questions with gold document ids) for
    the first `n_articles` KorQuAD dev articles; small real corpora for retriever tests."""
    from odqa.data import load_qa, write_qa
    from odqa.data.korquad import paragraph_document_id
    from odqa.io import write_jsonl
    from odqa.schema import Passage
    from odqa.settings import korquad_dev_path

    examples = load_qa(korquad_dev_path()).examples
    titles = list(dict.fromkeys(e.title for e in examples))[:n_articles]
    examples = [e for e in examples if e.title in titles]
    passages: dict = {}
    for e in examples:
        e.document_id = paragraph_document_id(e.context)
        passages.setdefault(e.document_id, Passage(f"{e.document_id}-0", e.document_id, e.title, e.context))
    write_jsonl(root / "passages.jsonl", (p.to_dict() for p in passages.values()))
    write_qa(root / "qa.jsonl", examples)
    return root / "passages.jsonl", root / "qa.jsonl", list(passages.values())


@pytest.fixture(scope="session")
def korquad_articles():
    """`write_korquad_articles` for module fixtures (test modules do not import conftest)."""
    return write_korquad_articles


@dataclass
class RegisteredModel:
    tracking_uri: str
    model_uri: str  # the logged pyfunc (runs:/ or models:/m-...)
    versions: list[str]  # registered versions of `odqa`, all the same pyfunc
    questions: list[str]  # KorQuAD dev questions about the indexed articles


def build_registered_model(root: Path, tracking_uri: str | None = None) -> RegisteredModel:
    """A real odqa model, small: a BM25 index over 3 KorQuAD dev articles and a tiny reader (hidden 32,
    one layer, a few steps), logged with odqa.serving.log_model to `tracking_uri` (default a SQLite
    registry under root) and registered twice (versions of `odqa`, alias champion on the first).
    About 15 s."""
    from odqa import registry, serving, tracking
    from odqa.data import load_qa
    from odqa.reader.train import ReaderTrainConfig, train_reader
    from odqa.retrieval.base import build_index

    passages, qa, _ = write_korquad_articles(root, 3)
    index = build_index("bm25", {"analyzer": "bigram"}, passages, root / "index")
    reader = train_reader(
        ReaderTrainConfig(
            hidden_size=32, num_layers=1, num_heads=2, vocab_size=500, max_steps=4, batch_size=8, max_length=128,
            doc_stride=32, num_threads=1,
        ),
        qa,
        root / "reader",
        corpus_path=passages,
    )  # fmt: skip
    uri = tracking_uri or tracking.sqlite_uri(root / "mlflow.db")
    run_id = tracking.start_pipeline_run(uri, "serving-tests", "build")
    model_uri = serving.log_model(uri, run_id, index, [reader], {"n_best": 5}, {}, top_k=10)
    versions = [registry.register_version(uri, "odqa", model_uri) for _ in range(2)]
    tracking.client(uri).set_registered_model_alias("odqa", registry.CHAMPION, versions[0])
    questions = list(dict.fromkeys(e.question for e in load_qa(qa).examples))
    return RegisteredModel(uri, model_uri, versions, questions)


@pytest.fixture(scope="session")
def odqa_model_builder():
    """`build_registered_model` for fixtures (test modules do not import conftest)."""
    return build_registered_model


def pytest_collection_modifyitems(config, items) -> None:
    """Every test not marked `integration` is a `unit` test (make test-unit selects those)."""
    for item in items:
        if item.get_closest_marker("integration") is None:
            item.add_marker(pytest.mark.unit)


def build_competition_layout(
    korquad_path: Path, root: Path, articles: int = 8, eval_articles: int = 2
) -> dict:
    """The Korean MRC competition's layout, built from KorQuAD 1.0 dev: `train_dataset` (a DatasetDict with
    train and validation), `wikipedia_documents.json` (a dict keyed "0".."N"; every validation document
    duplicated under a new id that its questions name as gold), and
    `test_dataset` (a DatasetDict whose only split is validation, questions only). Returns the paths and
    the ids: {"corpus", "train", "test", "document_ids", "duplicate_ids", "test_ids"}."""
    import json

    import datasets

    data = json.loads(korquad_path.read_text(encoding="utf-8"))["data"][:articles]
    documents: dict[str, dict] = {}
    ids_by_context: dict[str, int] = {}
    records: list[tuple[int, dict]] = []  # (article number, flat record)
    test: list[dict] = []
    for number, article in enumerate(data):
        for paragraph in article["paragraphs"][:2]:
            context = paragraph["context"]
            if context not in ids_by_context:
                ids_by_context[context] = len(ids_by_context)
                doc_id = ids_by_context[context]
                documents[str(doc_id)] = {
                    "text": context,
                    "title": article["title"],
                    "document_id": doc_id,
                    "corpus_source": "위키피디아",
                }
            for qa in paragraph["qas"][:3]:
                answer = qa["answers"][0]
                records.append(
                    (
                        number,
                        {
                            "id": f"mrc-{qa['id']}",
                            "title": article["title"],
                            "context": context,
                            "question": qa["question"],
                            "document_id": ids_by_context[context],
                            "answers": {"answer_start": [answer["answer_start"]], "text": [answer["text"]]},
                        },
                    )
                )
            if number >= articles - eval_articles:
                test += [
                    {"id": f"mrc-test-{qa['id']}", "question": qa["question"]} for qa in paragraph["qas"][3:5]
                ]
    train = [r for n, r in records if n < articles - eval_articles]
    validation = [r for n, r in records if n >= articles - eval_articles]
    # Each validation document is duplicated under a new id, and its questions name the copy as gold:
    # preprocess keeps one of the two, so recall counts only through doc_aliases.json.
    duplicate_ids = {}
    for doc_id in sorted({r["document_id"] for r in validation}):
        copy_id = len(documents)
        documents[str(copy_id)] = {**documents[str(doc_id)], "document_id": copy_id}
        duplicate_ids[copy_id] = doc_id
    copies = {original: copy for copy, original in duplicate_ids.items()}
    validation = [{**r, "document_id": copies[r["document_id"]]} for r in validation]
    root.mkdir(parents=True, exist_ok=True)
    corpus = root / "wikipedia_documents.json"
    corpus.write_text(json.dumps(documents, ensure_ascii=False), encoding="utf-8")
    datasets.DatasetDict(
        {"train": datasets.Dataset.from_list(train), "validation": datasets.Dataset.from_list(validation)}
    ).save_to_disk(str(root / "train_dataset"))
    datasets.DatasetDict({"validation": datasets.Dataset.from_list(test)}).save_to_disk(
        str(root / "test_dataset")
    )
    return {
        "corpus": corpus,
        "train": root / "train_dataset",
        "test": root / "test_dataset",
        "document_ids": {str(i) for i in range(len(documents))},
        "duplicate_ids": duplicate_ids,
        "test_ids": {r["id"] for r in test},
        "train_count": len(train),
        "validation_count": len(validation),
    }


@pytest.fixture(scope="session")
def competition_layout(tmp_path_factory, korquad_path) -> dict:
    """build_competition_layout with 8 articles (6 train, 2 validation); about 1 s."""
    return build_competition_layout(korquad_path, tmp_path_factory.mktemp("competition"))
