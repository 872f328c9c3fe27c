"""CLI flags generated from the stage configs: one flag per field with the field's default and help,
values through `from_dict` (errors name the flag), old spellings accepted with a one-line warning."""

from __future__ import annotations

import argparse

import pytest

from odqa.augment import AugmentConfig
from odqa.cli import build_parser, main
from odqa.cli.options import add_config_arguments, config_from_args
from odqa.curriculum import CurriculumConfig
from odqa.data.korquad import KorquadSplitConfig
from odqa.ensemble import EnsembleConfig
from odqa.errors import InputError
from odqa.evaluation import EvaluateConfig
from odqa.preprocess import PreprocessConfig
from odqa.reader.config import PredictConfig, ReaderTrainConfig

# command -> (config, flags renamed by the command)
COMMANDS = {
    "train": (ReaderTrainConfig, {}),
    "predict": (PredictConfig, {}),
    "augment": (AugmentConfig, {}),
    "ensemble": (EnsembleConfig, {}),
    "curriculum": (CurriculumConfig, {"readers": "--reader"}),
    "preprocess": (PreprocessConfig, {}),
    "prepare-korquad": (KorquadSplitConfig, {}),
    "evaluate": (EvaluateConfig, {}),
}


@pytest.fixture(scope="module")
def subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_config_field_has_a_flag_with_its_default_in_the_help(subparsers, command):
    config_class, renamed = COMMANDS[command]
    parser = subparsers[command]
    by_dest = {a.dest: a for a in parser._actions if a.help != argparse.SUPPRESS}
    for name, field in config_class.model_fields.items():
        action = by_dest[name]
        flag = renamed.get(name, "--" + name.replace("_", "-"))
        assert flag in action.option_strings
        assert field.description.rstrip(".") in action.help and "(default: " in action.help
    assert "default: " in parser.format_help()


def _config(command: str, argv: list[str]):
    config_class, renamed = COMMANDS[command]
    args = build_parser().parse_args(argv)
    return config_from_args(config_class, args, flags=renamed)


def test_flags_not_given_leave_the_config_defaults():
    config = _config("predict", ["predict", "--reader", "r", "--data", "q", "--out", "o"])
    assert config == PredictConfig()
    assert _config("train", ["train", "--train", "t", "--out", "o"]) == ReaderTrainConfig()


def test_values_are_typed_by_the_config():
    argv = ["predict", "--reader", "r", "--data", "q", "--out", "o"]
    config = _config("predict", [*argv, "--n-best", "7", "--top-k-passages", "none", "--no-trim-particles"])
    assert (config.n_best, config.top_k_passages, config.trim_particles) == (7, None, False)
    assert _config("predict", [*argv, "--top-k-passages", "0"]).top_k_passages is None  # 0: all, as before
    train = _config("train", ["train", "--train", "t", "--out", "o", "--epochs", "2", "--title-prefix"])
    assert train.epochs == 2.0 and train.title_prefix is True


@pytest.mark.parametrize("weights", [["1", "2"], ["1,2"], ["[1, 2]"]])
def test_list_flags_take_several_values_commas_or_json(weights):
    config = _config("ensemble", ["ensemble", "--nbest", "a", "--out", "o", "--weights", *weights])
    assert config.weights == [1.0, 2.0]


def test_curriculum_readers_flag_is_reader():
    config = _config("curriculum", ["curriculum", "--qa", "q", "--out", "o", "--reader", "r1", "r2"])
    assert config.readers == ["r1", "r2"]


def test_a_bad_value_names_its_flag(capsys, tmp_path):
    argv = ["predict", "--reader", str(tmp_path), "--data", "q.jsonl", "--out", str(tmp_path / "o")]
    assert main([*argv, "--top-k-passages", "x"]) == 2
    err = capsys.readouterr().err
    assert err == "odqa predict: error: --top-k-passages: must be an integer, got 'x'\n"
    assert main([*argv, "--n-best", "2.5"]) == 2
    assert "--n-best: must be an integer, got '2.5'" in capsys.readouterr().err
    with pytest.raises(InputError, match=r"^--weights: must be a number|^--weights\.0: must be a number"):
        _config("ensemble", ["ensemble", "--nbest", "a", "--out", "o", "--weights", "heavy"])


def test_add_config_arguments_on_a_fresh_parser():
    parser = argparse.ArgumentParser()
    add_config_arguments(parser, PreprocessConfig, exclude=("seed",))
    options = {s for a in parser._actions for s in a.option_strings}
    assert {"--max-chars", "--clean", "--no-clean", "--near-duplicate-threshold"} <= options
    assert "--seed" not in options
    args = parser.parse_args(["--max-chars", "400", "--near-duplicate-threshold", "none"])
    config = config_from_args(PreprocessConfig, args)
    assert (config.max_chars, config.near_duplicate_threshold, config.seed) == (
        400,
        None,
        PreprocessConfig().seed,
    )


@pytest.mark.parametrize(
    ("command", "old", "new", "field", "value"),
    [
        ("train", ["--threads", "2"], "--num-threads", "num_threads", 2),
        ("predict", ["--threads", "1"], "--num-threads", "num_threads", 1),
        (
            "preprocess",
            ["--near-dup-threshold", "0.8"],
            "--near-duplicate-threshold",
            "near_duplicate_threshold",
            0.8,
        ),
        (
            "preprocess",
            ["--exact-dedup-only"],
            "--near-duplicate-threshold none",
            "near_duplicate_threshold",
            None,
        ),
    ],
)
def test_old_flag_spellings_still_work_with_a_warning(capsys, command, old, new, field, value):
    required = {
        "train": ["--train", "t", "--out", "o"],
        "predict": ["--reader", "r", "--data", "q", "--out", "o"],
        "preprocess": ["--documents", "d", "--out", "o"],
    }[command]
    config = _config(command, [command, *required, *old])
    assert getattr(config, field) == value
    assert capsys.readouterr().err == f"odqa: {old[0]} is deprecated, use {new}\n"


def test_predict_model_flag_is_now_reader(capsys):
    args = build_parser().parse_args(["predict", "--model", "folder", "--data", "q", "--out", "o"])
    assert args.reader == "folder"
    assert capsys.readouterr().err == "odqa: --model is deprecated, use --reader\n"


def test_index_kind_flag_with_the_old_retriever_spelling(tmp_path, capsys):
    passages = tmp_path / "passages.jsonl"
    passages.write_text('{"passage_id": "a-0", "document_id": "a", "title": "", "text": "서울은 수도"}\n')
    assert main(["index", "--retriever", "bm25", "--analyzer", "whitespace", "--passages", str(passages), "--out", str(tmp_path / "i")]) == 0  # fmt: skip
    assert capsys.readouterr().err.splitlines()[0] == "odqa: --retriever is deprecated, use --kind"
    assert main(["index", "--passages", str(passages), "--out", str(tmp_path / "j")]) == 2
    assert "--kind is required" in capsys.readouterr().err


def test_retriever_options_errors_name_the_option_flag(tmp_path, capsys):
    passages = tmp_path / "passages.jsonl"
    passages.write_text('{"passage_id": "a-0", "document_id": "a", "title": "", "text": "서울은 수도"}\n')
    argv = ["index", "--kind", "bm25", "--passages", str(passages), "--out", str(tmp_path / "i")]
    assert main([*argv, "--option", "k1=fast"]) == 2
    assert capsys.readouterr().err == "odqa index: error: --option: k1: must be a number, got 'fast'\n"
    assert main([*argv, "--option", "colour=red"]) == 2
    assert "--option: BM25Config has no option(s) ['colour']" in capsys.readouterr().err
    assert not (tmp_path / "i").exists()


def test_index_help_lists_each_kinds_options(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["index", "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    for kind, option in (
        ("bm25", "k1"),
        ("dense", "epochs"),
        ("hybrid", "members"),
        ("elasticsearch", "alias"),
    ):
        assert f"--option keys of --kind {kind}:" in out
        assert f"  {option}: " in out
    assert "(default: 4)" in out  # dense epochs


def test_pipeline_index_kind_flag_is_now_retriever_kind(capsys):
    from odqa.cli.pipeline import _params

    args = build_parser().parse_args(["pipeline", "submit", "--host", "h", "--index-kind", "hybrid"])
    assert _params(args) == {"retriever_kind": "hybrid"}
    assert capsys.readouterr().err == "odqa: --index-kind is deprecated, use --retriever-kind\n"


def test_old_pipeline_parameter_names_are_renamed(capsys):
    from odqa.pipeline.runner import pipeline_arguments

    renamed = pipeline_arguments({"index_kind": "dense", "index_options": {"epochs": 1}, "top_k": 5})
    assert renamed == {"retriever_kind": "dense", "retriever_options": {"epochs": 1}, "top_k": 5}
    assert capsys.readouterr().err.splitlines() == [
        "odqa: pipeline parameter index_kind is deprecated, use retriever_kind",
        "odqa: pipeline parameter index_options is deprecated, use retriever_options",
    ]
    with pytest.raises(InputError, match="retriever_kind only"):
        pipeline_arguments({"index_kind": "dense", "retriever_kind": "bm25"})
