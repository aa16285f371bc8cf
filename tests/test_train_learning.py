"""It learns (flow model on motion-direction clips built by `flowprep build`), it does not learn
shuffled labels, and a resumed run is bit-identical to an uninterrupted one."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

from click.testing import CliRunner  # noqa: E402

from flowprep.cli import cli  # noqa: E402
from flowprep.train.config import TrainConfig  # noqa: E402
from flowprep.train.loop import train  # noqa: E402
from flowprep.train.synthdata import make_tao_dataset  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def direction_dataset(tmp_path_factory):
    """5 classes = 5 motion directions; 80 clips of 12 frames (48x64) -> DIS flow, 60 train / 20 val."""
    from flowprep.builder.api import build
    from flowprep.builder.config import BuildConfig
    from flowprep.synth import make_release_folder

    tmp = tmp_path_factory.mktemp("learn")
    make_release_folder(
        tmp / "release", sources_per_class=8, clips_per_source=2, frames=12, height=48, width=64, seed=3
    )
    summary = build(
        BuildConfig(
            source=tmp / "release",
            out=tmp / "ds",
            flow="dis",
            modality="flow",
            val_ratio=0.25,
            seed=0,
            jobs=2,
            progress=False,
        )
    )
    assert summary.ok
    return tmp / "ds"


def _cfg(ds, out, **kw):
    # hflip 0: mirroring turns "walk" (moving right) into "run" (moving left); it is label-changing here
    base = dict(
        dataset=ds,
        out=out,
        arch="2d",
        modality="of",
        frames=4,
        input_size=32,
        epochs=8,
        batch_size=8,
        optimizer="adamw",
        lr=1e-3,
        lr_steps=[5],
        workers=0,
        hflip=0.0,
        progress=False,
        seed=0,
    )
    base.update(kw)
    return TrainConfig(**base)


@pytest.mark.slow
def test_flow_model_learns_direction(direction_dataset, tmp_path):
    res = train(_cfg(direction_dataset, tmp_path / "run"))
    log = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert len(log) == 8 and log[-1]["epoch"] == 8
    assert res.best_acc >= 0.9, log
    # the CLI evaluates best.pt to the same accuracy, in both modes
    out = CliRunner().invoke(
        cli,
        [
            "evaluate",
            str(tmp_path / "run" / "best.pt"),
            str(direction_dataset / "val"),
            "--mode",
            "all",
            "--no-progress",
        ],
    )
    assert out.exit_code == 0, out.output
    report = json.loads((tmp_path / "run" / "eval-val" / "report.json").read_text())
    assert report["modes"]["center"]["top1"] == pytest.approx(res.best_acc)
    assert report["modes"]["conv"]["top1"] >= 0.85
    assert (tmp_path / "run" / "eval-val" / "confusion_center.png").is_file()


@pytest.mark.slow
def test_shuffled_labels_do_not_generalise(direction_dataset, tmp_path):
    res = train(_cfg(direction_dataset, tmp_path / "shuffled", shuffle_labels=True))
    assert res.best_acc <= 0.6


@pytest.mark.slow
def test_resume_is_exact(tmp_path):
    ds = tmp_path / "ds"
    make_tao_dataset(ds, train_per_class=2, val_per_class=1, frames=6, height=36, width=44)
    common = dict(
        arch="3d",
        modality="joint",
        frames=3,
        input_size=32,
        batch_size=4,
        optimizer="sgd",
        lr=0.01,
        lr_steps=[1],
        workers=0,
        hflip=0.5,
        crop="multiscale",
        dropout=0.5,
        progress=False,
        seed=5,
    )
    train(TrainConfig(dataset=ds, out=tmp_path / "full", epochs=2, **common))
    train(TrainConfig(dataset=ds, out=tmp_path / "split", epochs=1, **common))
    with pytest.raises(Exception, match="--resume"):
        train(TrainConfig(dataset=ds, out=tmp_path / "split", epochs=2, **common))
    train(TrainConfig(dataset=ds, out=tmp_path / "split", epochs=2, resume=True, **common))
    a = torch.load(tmp_path / "full" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "split" / "last.pt", weights_only=True)
    assert a["epoch"] == b["epoch"] == 2
    for k, v in a["state_dict"].items():
        assert torch.equal(v, b["state_dict"][k]), k
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert torch.equal(sa["momentum_buffer"], sb["momentum_buffer"])
    la = (tmp_path / "full" / "log.jsonl").read_text().splitlines()
    lb = (tmp_path / "split" / "log.jsonl").read_text().splitlines()
    strip = lambda line: {k: v for k, v in json.loads(line).items() if k != "train_clips_per_s"}  # noqa: E731
    assert [strip(x) for x in la] == [strip(x) for x in lb]


@pytest.mark.slow
def test_interrupt_while_committing_an_epoch_loses_nothing(tmp_path, monkeypatch):
    """Ctrl-C after best.pt and the log line but before last.pt: --resume redoes that epoch, so
    best.pt, the log and last.pt end as in an uninterrupted run."""
    from flowprep.train import checkpoint as ckpt_mod

    ds = tmp_path / "ds"
    make_tao_dataset(ds, train_per_class=2, val_per_class=1, frames=6, height=36, width=44)
    common = dict(
        arch="2d",
        modality="of",
        frames=3,
        input_size=32,
        batch_size=4,
        optimizer="adamw",
        lr=1e-3,
        workers=0,
        hflip=0.0,
        progress=False,
        seed=3,
    )
    train(TrainConfig(dataset=ds, out=tmp_path / "full", epochs=3, **common))
    real_save = ckpt_mod.save_checkpoint

    def interrupt_last_of_epoch_2(path, ck):
        if path.name == "last.pt" and ck.epoch == 2:
            with open(path.parent / "log.jsonl", "a") as fh:
                fh.write('{"epoch": 3, "cut off')  # a line half-written when the interrupt came
            raise KeyboardInterrupt
        return real_save(path, ck)

    monkeypatch.setattr(ckpt_mod, "save_checkpoint", interrupt_last_of_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        train(TrainConfig(dataset=ds, out=tmp_path / "cut", epochs=3, **common))
    monkeypatch.setattr(ckpt_mod, "save_checkpoint", real_save)
    train(TrainConfig(dataset=ds, out=tmp_path / "cut", epochs=3, resume=True, **common))
    for name in ("last.pt", "best.pt"):
        a = torch.load(tmp_path / "full" / name, weights_only=True)
        b = torch.load(tmp_path / "cut" / name, weights_only=True)
        assert a["epoch"] == b["epoch"], name
        assert all(torch.equal(v, b["state_dict"][k]) for k, v in a["state_dict"].items()), name
    epochs = [json.loads(x)["epoch"] for x in (tmp_path / "cut" / "log.jsonl").read_text().splitlines()]
    assert epochs == [1, 2, 3]
