"""Reader configs: the committed recipe (configs/klue-roberta-large.json) is a ReaderTrainConfig +
PredictConfig pair (unknown keys fail)."""

from __future__ import annotations

import json
from pathlib import Path

from odqa.reader.config import PredictConfig, ReaderTrainConfig

RECIPE = Path(__file__).resolve().parents[2] / "configs" / "klue-roberta-large.json"


def test_recipe_loads_through_the_config_classes():
    recipe = json.loads(RECIPE.read_text(encoding="utf-8"))
    assert set(recipe) == {"train", "predict"}
    train = ReaderTrainConfig.from_dict(recipe["train"], source=str(RECIPE))
    predict = PredictConfig.from_dict(recipe["predict"], source=str(RECIPE))
    assert (train.reader_model, train.max_length, train.doc_stride) == ("klue/roberta-large", 384, 128)
    assert train.precision == "bf16" and predict.precision == "bf16"
    assert train.to_dict() == ReaderTrainConfig.from_dict(train.to_dict()).to_dict()
