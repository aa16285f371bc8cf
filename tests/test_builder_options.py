"""Build options are declared once (flowprep.builder.options): the fingerprint, the build state, the
clip jobs' settings and the dataset record follow the declaration, and the fingerprints of earlier
versions are kept (a resumed build of an older output is recognised)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from flowprep.builder.api import job_settings
from flowprep.builder.config import BuildConfig, fingerprint
from flowprep.builder.finalize import config_to_state, load_build_state
from flowprep.builder.folder import BuildFolder
from flowprep.builder.job import JobSettings
from flowprep.builder.options import (
    OPTIONS,
    from_state,
    output_settings,
    record_values,
    state_values,
    worker_values,
)
from flowprep.builder.optionspec import FIELD_DEFAULT, BuildOption, flag, param, same
from flowprep.commands.build import build_cmd, build_hmdb5_cmd, build_ucf101_cmd, make_config, options_of
from flowprep.errors import ConfigError, DatasetError, OptionError
from flowprep.flow.encoding import FlowEncoding
from flowprep.layout.sections import DecodeInfo, RgbInfo
from helpers import run_cli

#: fingerprints the code before the declaration (main at 17e6bc4) computed for these settings: a
#: build made then must be resumed, not refused as "made with other settings"
EARLIER = [
    ({}, "971cbafdda44b38d"),
    ({"modality": "rgb"}, "e94702456ed5ce17"),
    ({"modality": "flow", "flow": "dis", "flow_params": {"preset": "fast"}}, "7718155253784dfd"),
    ({"layout": "mmaction2", "rgb_format": "jpg", "rgb_quality": 80}, "c4e032cda7dff3cd"),
    ({"size": (64, 48), "frame_step": 2, "seed": 5, "val_ratio": 0.3, "split_by": "clip", "classes": ["b", "a"]},
     "3ff47fd8ab9e7acf"),
    ({"short_side": 128, "encoding": FlowEncoding(mode="maxrad", bound=10.0, image_format="png", jpeg_quality=90)},
     "02d7b9300d52a6bf"),
    ({"pack": "webdataset", "shard_size": 12345}, "26c4bc83a4e0bf53"),
    ({"jobs": 3, "force": True, "engine": "dask", "scheduler": "tcp://h:8786", "shard": (1, 2), "gpus": [0, 1],
      "progress": False, "max_clip_bytes": 999, "scheduler_timeout": 5.0, "allow_missing_clips": True},
     "971cbafdda44b38d"),
]  # fmt: skip


def _cfg(tmp_path: Path, **kw) -> BuildConfig:
    (tmp_path / "src").mkdir(exist_ok=True)
    return BuildConfig(source=tmp_path / "src", out=tmp_path / "out", **kw)


@pytest.mark.parametrize(("options", "expected"), EARLIER)
def test_fingerprints_of_earlier_versions_are_kept(tmp_path, options, expected):
    assert fingerprint(_cfg(tmp_path, **options).output_settings()) == expected


def test_every_field_is_declared_once():
    assert set(OPTIONS) == {f.name for f in dataclasses.fields(BuildConfig)}


def test_the_fingerprint_holds_the_output_options_as_declared(tmp_path):
    full = _cfg(tmp_path, pack="webdataset")
    assert set(output_settings(full)) == {n for n, o in OPTIONS.items() if o.role == "output"}
    # a group's options only when the build has it
    no_flow = _cfg(tmp_path, modality="rgb")
    assert set(output_settings(no_flow)) == {n for n, o in OPTIONS.items() if o.role == "output" and o.group is None}


def test_the_state_keeps_what_finalize_needs_and_reads_back(tmp_path):
    lists = [tmp_path / "t.txt", tmp_path / "v.txt"]
    for p in lists:
        p.write_text("x\n")
    cfg = _cfg(tmp_path, train_list=lists[0], val_list=lists[1], allow_missing_clips=True, size=(64, 48))
    stored = state_values(cfg)
    assert set(stored) == {n for n, o in OPTIONS.items() if o.stored != "never"} - {"pack", "shard_size"}
    assert stored["source"] == str((tmp_path / "src").resolve()) and stored["size"] == [64, 48]
    again = BuildConfig(out=cfg.out, **from_state(stored))
    assert again.output_settings() == cfg.output_settings() and again.size == (64, 48)
    # run options are not kept: a finalize on another node runs its own way
    assert "jobs" not in stored and "gpus" not in stored
    plain = state_values(_cfg(tmp_path))
    assert not {"train_list", "val_list", "allow_missing_clips", "pack", "shard_size"} & set(plain)


#: the build state the code before the declaration wrote for the default config (``source`` aside):
#: `flowprep finalize` of an output built then reads it, and a resumed build rewrites the same bytes
EARLIER_STATE = {
    "classes": None,
    "encoding": {"bound": 20.0, "image_format": "jpg", "jpeg_quality": 95, "mode": "fixed"},
    "flow": "tvl1",
    "flow_params": {},
    "frame_step": 1,
    "layout": "tao",
    "modality": "both",
    "official_split": None,
    "rgb_format": "png",
    "rgb_quality": 95,
    "seed": 0,
    "short_side": None,
    "size": None,
    "source_kind": "folder",
    "split_by": "group",
    "splits_source": None,
    "val_ratio": 0.1,
}


def test_the_state_of_earlier_versions_is_kept(tmp_path):
    cfg = _cfg(tmp_path)
    assert state_values(cfg) == dict(EARLIER_STATE, source=str(cfg.source.resolve()))
    packed = state_values(_cfg(tmp_path, pack="webdataset", shard_size=12345))
    assert packed == dict(EARLIER_STATE, source=str(cfg.source.resolve()), pack="webdataset", shard_size=12345)
    folder = BuildFolder(cfg.out)
    folder.state.mkdir(parents=True)
    folder.save_state({"config": dict(EARLIER_STATE, source=str(cfg.source)), "flow": None})
    again, flow = load_build_state(folder)
    assert flow is None and again.output_settings() == cfg.output_settings()


def test_a_state_without_its_keys_is_one_line(tmp_path):
    cfg = _cfg(tmp_path)
    folder = BuildFolder(cfg.out)
    folder.state.mkdir(parents=True)
    state = config_to_state(cfg, None)
    del state["config"]["encoding"]
    folder.save_state(state)
    with pytest.raises(DatasetError, match="cannot read build state .*'encoding'"):
        load_build_state(folder)


def test_the_jobs_get_the_declared_options(tmp_path):
    cfg = _cfg(tmp_path, size=(64, 48), gpus=[1], pack="webdataset")
    sent = worker_values(cfg)
    assert set(sent) == {n for n, o in OPTIONS.items() if o.to_worker is not None}
    assert set(sent) <= {f.name for f in dataclasses.fields(JobSettings)}
    s = job_settings(cfg, {"name": "dis", "params": {}, "device": "cpu"})
    assert (s.size, s.gpus, s.pack, s.out, s.encoding) == ((64, 48), (1,), True, str(cfg.out), cfg.encoding.to_dict())


def test_the_record_sections_are_the_declared_ones(tmp_path):
    values = record_values(_cfg(tmp_path, rgb_format="jpg", rgb_quality=70, short_side=64))
    assert DecodeInfo(**values["decode"]) == DecodeInfo(64, None, 1)
    assert RgbInfo(**values["rgb"]) == RgbInfo("jpg", 70)
    assert RgbInfo(**record_values(_cfg(tmp_path, rgb_quality=70))["rgb"]) == RgbInfo("png", None)
    declared = {o.record.split(".")[0] for o in OPTIONS.values() if o.record}
    assert declared == {"layout", "modality", "encoding", "decode", "rgb", "packed"}
    assert set(values["decode"]) == {f.name for f in dataclasses.fields(DecodeInfo)}


def test_a_rule_is_checked_for_library_callers_as_on_the_command_line(tmp_path):
    with pytest.raises(ConfigError, match="^--scheduler goes with --engine dask$"):
        _cfg(tmp_path, scheduler="tcp://h:8786")
    (tmp_path / "t").write_text("")
    with pytest.raises(ConfigError, match="^give --train-list/--val-list or --splits/--official-split, not both$"):
        _cfg(tmp_path, train_list=tmp_path / "t", val_list=tmp_path / "t", splits_source=tmp_path / "t")
    with pytest.raises(OptionError, match="^flow backend 'dis': unknown parameter 'nope'") as err:
        _cfg(tmp_path, flow="dis", flow_params={"nope": 1})
    assert err.value.option == "--flow-param"


@dataclasses.dataclass
class _WithGamma(BuildConfig):
    """A hypothetical new option: one field and its row."""

    gamma: float = 1.0


def test_a_new_option_flows_through_every_conversion(tmp_path, monkeypatch):
    row = BuildOption(
        omit_default=True,
        to_worker=same,
        record="decode.gamma",
        cli=flag("--gamma", type=param("positive"), show_default=True, help="Gamma of the frames."),
    )
    monkeypatch.setitem(OPTIONS, "gamma", row)
    (tmp_path / "src").mkdir()
    cfg = _WithGamma(source=tmp_path / "src", out=tmp_path / "out", gamma=2.2)
    assert output_settings(cfg)["gamma"] == 2.2
    assert state_values(cfg)["gamma"] == 2.2 and _WithGamma(out=cfg.out, **from_state(state_values(cfg))) == cfg
    assert worker_values(cfg)["gamma"] == 2.2
    assert record_values(cfg)["decode"]["gamma"] == 2.2
    # at its default the option is absent: outputs built before it existed keep their fingerprint
    old = dataclasses.replace(cfg, gamma=1.0)
    assert fingerprint(output_settings(old)) == EARLIER[0][1] != fingerprint(output_settings(cfg))
    assert "gamma" not in state_values(old) and _WithGamma(out=cfg.out, **from_state(state_values(old))) == old


# --- the command line ------------------------------------------------------------------------------


def _names(cmd: click.Command) -> set[str]:
    return {p.name for p in cmd.params if p.name is not None}


def test_the_build_commands_have_the_declared_options():
    shared = {f.name for opt in OPTIONS.values() for f in opt.cli}
    per_command = {"source", "classes", "splits", "official_split", "train_list", "val_list"}
    assert _names(build_cmd) == shared | per_command
    assert (
        _names(build_hmdb5_cmd)
        == _names(build_ucf101_cmd)
        == shared | {"archive", "splits", "official_split", "classes"}
    )
    # every parameter the commands declare themselves names a field
    assert per_command - {"splits"} <= set(OPTIONS) and OPTIONS["splits_source"].param == "splits"
    # a flag's default is its field's (one value): those of this config are what `flowprep build` uses
    defaults = {f.name: f.default for f in dataclasses.fields(BuildConfig)}
    for name, opt in OPTIONS.items():
        for f in opt.cli:
            param_ = next(p for p in build_cmd.params if p.name == f.name)
            if f.default is FIELD_DEFAULT and not (f.is_flag or f.multiple or f.required):
                assert param_.default == defaults[name], name


def test_a_broken_rule_is_a_usage_error_once(tmp_path):
    (tmp_path / "src").mkdir()
    r = run_cli("build", tmp_path / "src", "--out", tmp_path / "o", "--classes", "a,a")
    assert r.exit_code == 2 and r.output.endswith("Error: --classes lists a more than once\n")
    r = run_cli("build", tmp_path / "src", "--out", tmp_path / "o", "--flow", "dis", "--flow-param", "preset=x")
    assert r.exit_code == 2 and "Error: Invalid value for '--flow-param': flow backend 'dis': preset='x'" in r.output
    r = run_cli("build", tmp_path / "src", "--out", tmp_path / "o", "--flow-param", "x")
    assert r.exit_code == 2 and "Error: Invalid value: expected NAME=VALUE, got 'x'" in r.output
    assert not (tmp_path / "o").exists()


def test_a_new_option_reaches_the_command_line(tmp_path, monkeypatch):
    row = BuildOption(cli=flag("--gamma", type=param("positive"), show_default=True, help="Gamma of the frames."))
    monkeypatch.setitem(OPTIONS, "gamma", row)
    seen: list[BuildConfig] = []

    @click.command()
    @click.argument("source")
    @options_of(_WithGamma)
    def cmd(source, **kw):
        seen.append(make_config(dict(kw, source=source), _WithGamma))

    (tmp_path / "src").mkdir()
    r = CliRunner().invoke(cmd, ["--help"])
    assert "--gamma FINITE FLOAT Gamma of the frames. [default: 1.0; x>0]" in " ".join(r.output.split())
    r = CliRunner().invoke(cmd, [str(tmp_path / "src"), "--out", str(tmp_path / "o"), "--gamma", "2.5"])
    assert r.exit_code == 0, r.output
    assert isinstance(seen[0], _WithGamma) and seen[0].gamma == 2.5
    r = CliRunner().invoke(cmd, [str(tmp_path / "src"), "--out", str(tmp_path / "o"), "--gamma", "-1"])
    assert r.exit_code == 2 and "--gamma" in r.output
