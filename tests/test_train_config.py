"""flowprep.train.config: a run's or a report's output may not lie inside the dataset."""

from __future__ import annotations

import pytest

from flowprep.errors import ConfigError
from helpers import invoke_checked, tree_names


def test_train_refuses_out_inside_the_dataset(small_dataset):
    pytest.importorskip("torch")
    before = tree_names(small_dataset)
    out = invoke_checked("train", small_dataset, "--out", small_dataset / "train" / "run1", code=2)
    assert "inside the dataset" in out
    assert tree_names(small_dataset) == before


def test_evaluate_refuses_out_inside_the_dataset(small_dataset, tmp_path):
    from flowprep.train.config import EvalConfig

    for side in ("train", "val"):
        with pytest.raises(ConfigError, match="inside the dataset"):
            EvalConfig(tmp_path / "best.pt", small_dataset / "val", out=small_dataset / side / "report")
    assert EvalConfig(tmp_path / "best.pt", small_dataset / "val", out=tmp_path / "report").out == tmp_path / "report"
