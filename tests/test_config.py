"""One config language: every stage config is a StageConfig, built by `from_dict` from any source. KFP
hands numbers inside dict/list parameters over as floats; each config must come back equal (ints as
ints) from that round trip, refuse 3.5 for an int and unknown keys, and say so on one line."""

from __future__ import annotations

import importlib
import json
import pkgutil

import pytest

import odqa
from odqa.augment import AugmentConfig
from odqa.config import StageConfig
from odqa.curriculum import CurriculumConfig
from odqa.data.klue import DistractorConfig
from odqa.data.korquad import KorquadSplitConfig
from odqa.data.layout import PrepareDataConfig
from odqa.ensemble import EnsembleConfig
from odqa.errors import InputError
from odqa.evaluation import EvaluateConfig
from odqa.evaluation.metrics import AnswerPickFields
from odqa.preprocess import PreprocessConfig
from odqa.reader.config import (
    FoldsConfig,
    PredictConfig,
    PretrainConfig,
    ReaderSettings,
    ReaderTrainConfig,
    ScratchModelFields,
    TrainingLoopFields,
    WindowFields,
)
from odqa.registry import RegisterConfig
from odqa.retrieval.bm25 import BM25Config
from odqa.retrieval.dense_encoder import DenseConfig
from odqa.retrieval.elastic import ElasticsearchConfig
from odqa.retrieval.hybrid import HybridConfig
from odqa.service.config import ServeConfig

# Each config with the fewest values it accepts ("defaults") and a non-default example whose ints
# sit at the top level and inside dicts and lists, where KFP turns them into floats.
EXAMPLES: dict[type[StageConfig], tuple[dict, dict]] = {
    PreprocessConfig: (
        {},
        {"max_chars": 400, "overlap_chars": 50, "near_duplicate_threshold": None, "num_perm": 64},
    ),
    AugmentConfig: (
        {},
        {"hard_negatives": 2, "qg_per_passage": 3, "qg_max_passages": 100, "qg_style": "cloze"},
    ),
    CurriculumConfig: ({}, {"readers": ["r1", "r2"], "scorer": "agreement", "hardest_weight": 0.5}),
    BM25Config: (
        {},
        {"analyzer": "kiwi", "analyzer_options": {"num_workers": 2, "pos": ["N", "V"]}, "k1": 1},
    ),
    ElasticsearchConfig: (
        {},
        {"shards": 3, "replicas": 1, "chunk_size": 100, "max_retries": 2, "shingle": True},
    ),
    DenseConfig: (
        {"train_qa": "qa.jsonl"},
        {"train_qa": "qa.jsonl", "epochs": 3, "hidden_size": 64, "hard_negatives": 2, "index_type": "hnsw"},
    ),
    HybridConfig: (
        {"indexes": ["a", "b"]},
        {
            "members": [
                {"kind": "bm25", "analyzer_options": {"num_workers": 2}},
                {"kind": "dense", "epochs": 3, "train_qa": "qa.jsonl", "hidden_size": 32},
            ],
            "rrf_k": 30,
            "depth": 50,
            "weights": [2, 1],
        },
    ),
    ReaderTrainConfig: (
        {},
        {"hidden_size": 64, "num_layers": 1, "max_steps": 100, "num_threads": 2, "epochs": 2},
    ),
    PredictConfig: ({}, {"n_best": 10, "top_k_passages": 3, "max_answer_length": 20, "num_threads": 1}),
    ReaderSettings: ({}, {"max_length": 128, "doc_stride": 32, "max_question_tokens": 16}),
    WindowFields: ({}, {"max_length": 128, "doc_stride": 32, "title_prefix": True}),
    EnsembleConfig: ({}, {"method": "rank_average", "weights": [2, 1], "n_best": 10}),
    EvaluateConfig: ({}, {"metric": "squad", "top_k": 5}),
    KorquadSplitConfig: ({}, {"eval_fraction": 0.5, "seed": 7}),
    PrepareDataConfig: ({}, {"corpus_uri": "c.json", "train_uri": "t", "eval_uri": "t", "split_seed": 3}),
    ServeConfig: ({}, {"port": 9000, "max_batch_size": 8, "max_wait_ms": 2}),
    ScratchModelFields: ({}, {"vocab_size": 500, "hidden_size": 32, "morpheme_vocab": False}),
    TrainingLoopFields: ({}, {"epochs": 2, "max_steps": 7, "grad_accum": 2, "device": "CPU"}),
    AnswerPickFields: ({}, {"answer_pick": "top", "pick_temperature": 2}),
    PretrainConfig: ({}, {"hidden_size": 32, "max_steps": 3, "max_length": 64, "whole_word_masking": True}),
    FoldsConfig: ({}, {"folds": 5, "seed": 1}),
    DistractorConfig: ({}, {"passage_chars": 300, "include_ner": False}),
    RegisterConfig: ({}, {"model_name": "m", "metric": "f1", "margin": 1}),
}


def all_stage_configs() -> set[type[StageConfig]]:
    """Every StageConfig subclass in the odqa package (each module imported)."""
    for module in pkgutil.walk_packages(odqa.__path__, "odqa."):
        if not module.name.startswith(("odqa.cli", "odqa.pipeline")):
            importlib.import_module(module.name)
    found, todo = set(), list(StageConfig.__subclasses__())
    while todo:
        cls = todo.pop()
        if cls.__module__.startswith("odqa.") and cls not in found:
            found.add(cls)
            todo.extend(cls.__subclasses__())
    return found


def kfp_round_trip(values):
    """What a dict/list pipeline parameter looks like inside a KFP component: every number a float."""

    def floats(value):
        if isinstance(value, bool):
            return value
        if isinstance(value, int):
            return float(value)
        if isinstance(value, dict):
            return {k: floats(v) for k, v in value.items()}
        if isinstance(value, list):
            return [floats(v) for v in value]
        return value

    return json.loads(json.dumps(floats(values)))


def strict(values) -> str:
    """JSON text: 3 and 3.0 differ here, though they are equal in Python."""
    return json.dumps(values, sort_keys=True)


def test_every_stage_config_has_examples():
    assert all_stage_configs() == set(EXAMPLES)


@pytest.mark.parametrize("config_class", list(EXAMPLES), ids=lambda c: c.__name__)
@pytest.mark.parametrize("which", ["defaults", "example"])
def test_kfp_float_round_trip_gives_the_same_config(config_class, which):
    values = EXAMPLES[config_class][0 if which == "defaults" else 1]
    config = config_class.from_dict(values)
    assert strict(config.to_dict()) == strict(json.loads(json.dumps(config.to_dict())))  # JSON-ready as it is
    back = config_class.from_dict(kfp_round_trip(config.to_dict()), source="a KFP parameter")
    assert back == config
    assert strict(back.to_dict()) == strict(config.to_dict())  # ints are ints again, not 3.0
    assert config_class.from_dict(config.to_dict()) == config  # to_dict/from_dict round trip


def test_given_ints_arrive_as_ints_after_kfp():
    config = HybridConfig.from_dict(kfp_round_trip(EXAMPLES[HybridConfig][1]), source="retriever_options")
    dense = config.members[1]
    assert dense["kind"] == "dense" and dense["epochs"] == 3 and type(dense["epochs"]) is int
    assert type(config.members[0]["analyzer_options"]["num_workers"]) is int
    assert type(config.rrf_k) is int and config.weights == [2.0, 1.0]
    ensemble = EnsembleConfig.from_dict(kfp_round_trip({"n_best": 10}), source="ensemble_config")
    assert type(ensemble.n_best) is int


@pytest.mark.parametrize(
    ("config_class", "values", "message"),
    [
        (EnsembleConfig, {"n_best": 10.5}, "ensemble_config: n_best: must be an integer, got 10.5"),
        (
            ReaderTrainConfig,
            {"epochs": 2, "hidden_size": 3.5},
            "reader_configs: hidden_size: must be an integer, got 3.5",
        ),
        (
            PreprocessConfig,
            {"max_chars": "many"},
            "preprocess_config: max_chars: must be an integer, got 'many'",
        ),
        (
            HybridConfig,
            {"members": [{"kind": "bm25"}, {"kind": "dense", "train_qa": "q", "epochs": 3.5}]},
            "retriever_options: members: member 1 (dense): epochs: must be an integer, got 3.5",
        ),
    ],
)
def test_a_fraction_for_an_int_is_one_line_naming_source_and_field(config_class, values, message):
    source = message.split(":")[0]
    with pytest.raises(InputError) as raised:
        config_class.from_dict(values, source=source)
    assert str(raised.value) == message


def test_unknown_keys_are_refused_on_one_line():
    with pytest.raises(InputError) as raised:
        PredictConfig.from_dict({"n_best": 3, "nbest": 5, "colour": "red"}, source="predict.json")
    text = str(raised.value)
    assert "\n" not in text
    assert text.startswith("predict.json: PredictConfig has no option(s) ['colour', 'nbest']; known: [")
    assert "'n_best'" in text


def test_every_problem_is_reported_together():
    with pytest.raises(InputError) as raised:
        EnsembleConfig.from_dict({"n_best": 0, "method": "avg"}, source="f.json")
    text = str(raised.value)
    assert "\n" not in text and "n_best: must be >= 1, got 0" in text and "method: must be one of" in text


def test_constructor_and_assignment_validate_too():
    with pytest.raises(InputError, match="^EnsembleConfig: n_best: must be an integer, got 2.5$"):
        EnsembleConfig(n_best=2.5)
    config = EnsembleConfig()
    config.n_best = 3.0
    assert config.n_best == 3 and type(config.n_best) is int
    with pytest.raises(InputError, match="n_best"):
        config.n_best = 0


def test_not_an_object_is_refused():
    with pytest.raises(
        InputError, match="^ensemble_config: EnsembleConfig settings must be a JSON object, got list$"
    ):
        EnsembleConfig.from_dict([1, 2], source="ensemble_config")
    assert EnsembleConfig.from_dict(None) == EnsembleConfig()


def test_replace_validates():
    config = DenseConfig(train_qa="q.jsonl")
    assert config.replace(epochs=2.0).epochs == 2
    with pytest.raises(InputError, match="epochs"):
        config.replace(epochs=2.5)


def test_old_key_names_are_read_with_a_warning(capsys):
    assert ReaderTrainConfig.from_dict({"threads": 2.0}).num_threads == 2
    assert PredictConfig(threads=1).num_threads == 1
    assert CurriculumConfig.from_dict({"reader_dirs": ["r"]}).readers == ["r"]
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "odqa: threads is deprecated, use num_threads",
        "odqa: threads is deprecated, use num_threads",
        "odqa: reader_dirs is deprecated, use readers",
    ]
    with pytest.raises(InputError, match="give num_threads only"):
        PredictConfig.from_dict({"threads": 1, "num_threads": 2})


@pytest.mark.parametrize("config_class", list(EXAMPLES), ids=lambda c: c.__name__)
def test_every_field_is_described(config_class):
    """Descriptions are the CLI's help text."""
    missing = [name for name, field in config_class.model_fields.items() if not field.description]
    assert not missing
