"""Which model serves: URIs parsed once, a new version loaded beside the old and swapped in one step,
a version that fails to load leaving the old one serving."""

from __future__ import annotations

import pytest

from odqa.errors import InputError
from odqa.service.models import ModelHolder, ModelSource


@pytest.mark.parametrize(
    "uri,expected",
    [
        ("models:/odqa@champion", ("odqa", "champion", None)),
        ("models:/odqa/7", ("odqa", None, "7")),
        ("runs:/abc/odqa_model", (None, None, None)),
        ("/models/odqa", (None, None, None)),
    ],
)
def test_model_uris(uri, expected):
    source = ModelSource.parse(uri, "sqlite:///r.db")
    assert (source.name, source.alias, source.version) == expected


@pytest.mark.parametrize("uri", ["", "models:/odqa", "models:/odqa@champion/3"])
def test_bad_model_uris_are_one_line_naming_the_flag(uri):
    with pytest.raises(InputError, match="^--model: "):
        ModelSource.parse(uri, "sqlite:///r.db")


def test_a_missing_database_is_refused_before_mlflow_creates_one(tmp_path):
    db = tmp_path / "none" / "mlflow.db"
    source = ModelSource.parse("models:/odqa@champion", f"sqlite:///{db}")
    with pytest.raises(InputError, match="no MLflow database at"):
        source.check_registry()
    assert not db.parent.exists()


class FakeSource(ModelSource):
    """An alias whose version the test sets."""

    def __init__(self):
        super().__init__("models:/odqa@champion", "sqlite:///unused.db", "odqa", "champion")
        object.__setattr__(self, "_versions", ["1"])

    def resolve(self) -> str:
        return self._versions[-1]

    def move(self, version: str) -> None:
        self._versions.append(version)


def test_the_new_version_is_loaded_beside_the_old_then_swapped():
    source = FakeSource()
    serving_during_load = []
    holder: ModelHolder

    def loader(uri):
        serving_during_load.append(holder.current.version if holder.current else None)
        if uri == "models:/odqa/3":
            raise OSError("artifact download failed")
        return {"uri": uri}

    swaps = []
    holder = ModelHolder(source, loader=loader, on_swap=lambda old, new: swaps.append((old, new)))
    assert (
        holder.refresh()
        and holder.current.version == "1"
        and holder.current.model == {"uri": "models:/odqa/1"}
    )
    assert not holder.refresh()  # same version: nothing loaded
    source.move("2")
    assert holder.refresh() and holder.current.version == "2"
    assert serving_during_load == [None, "1"]  # version 1 answered while 2 loaded
    assert [(o.version if o else None, n.version) for o, n in swaps] == [(None, "1"), ("1", "2")]

    source.move("3")  # a version that cannot load: 2 keeps serving, 3 is not retried until the alias moves
    with pytest.raises(OSError):
        holder.refresh()
    assert holder.current.version == "2" and holder.state == "ready" and "artifact" in holder.last_error
    with pytest.raises(InputError, match="failed to load before"):
        holder.refresh()
    assert len(serving_during_load) == 3
    source.move("4")
    assert holder.refresh() and holder.current.version == "4"
