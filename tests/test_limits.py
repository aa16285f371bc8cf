"""flowprep.limits: configs check their numbers when created (not only the CLI), JSON stays valid."""

from __future__ import annotations

import math

import pytest

from flowprep.errors import ConfigError
from flowprep.flow.encoding import FlowEncoding
from flowprep.fsio.writing import dump_json
from flowprep.limits import json_safe


def test_config_dataclasses_check_numbers_too(tmp_path):
    from flowprep.builder.config import BuildConfig
    from flowprep.train.config import TrainConfig

    with pytest.raises(ConfigError, match="finite"):
        FlowEncoding(bound=math.inf)
    with pytest.raises(ConfigError, match="val-ratio"):
        BuildConfig(source=tmp_path, out=tmp_path / "o", val_ratio=math.nan)
    with pytest.raises(ConfigError, match="8192"):
        BuildConfig(source=tmp_path, out=tmp_path / "o", size=(100000, 100000))
    for bad in ({"lr": math.nan}, {"workers": -1}, {"input_size": 100000}, {"clip_grad": math.inf}):
        with pytest.raises(ConfigError):
            TrainConfig(dataset=tmp_path, out=tmp_path / "o", **bad).validate()


def test_json_is_always_valid():
    with pytest.raises(ValueError):
        dump_json({"bound": math.inf})
    assert json_safe({"a": [math.nan, 1.0], "b": math.inf}) == {"a": [None, 1.0], "b": None}
