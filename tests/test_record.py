"""The dataset record (flowprep.layout.record, dataset_record, sections, fields): one typed reader, one
writer, the published JSON Schema, and one-line errors naming the file and the field."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest

from flowprep.errors import DatasetError
from flowprep.flow.encoding import FlowEncoding
from flowprep.fsio.writing import dump_json
from flowprep.layout.dataset_record import ClipEntry, DatasetRecord, Normalization, record_from_dict
from flowprep.layout.fields import FieldError
from flowprep.layout.provenance import SideCounts, SourceFile, SourceInfo, SplitInfo
from flowprep.layout.record import read_record, write_record
from flowprep.layout.sections import DecodeInfo, FlowInfo, RgbInfo
from helpers import invoke_checked, json_values, mutate, run_cli

SCHEMA = json.loads((Path(__file__).resolve().parents[1] / "docs" / "record.schema.json").read_text())


# --- a tiny JSON Schema validator: the subset docs/record.schema.json uses ----------------------------

_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def _same(a: object, b: object) -> bool:
    return type(a) is type(b) and a == b or (_TYPES["number"](a) and _TYPES["number"](b) and a == b)


def schema_errors(value: object, schema: dict, where: str = "$") -> list[str]:
    """Where ``value`` breaks ``schema`` (keywords: $ref to #/$defs, type, const, enum, properties,
    required, additionalProperties, items, min/maxItems, uniqueItems, min/maxLength, pattern,
    minimum, maximum, exclusiveMinimum)."""
    if "$ref" in schema:
        schema = SCHEMA["$defs"][schema["$ref"].rsplit("/", 1)[1]]
    types = schema.get("type")
    if types is not None:
        types = [types] if isinstance(types, str) else types
        if not any(_TYPES[t](value) for t in types):
            return [f"{where}: {value!r} is not of type {types}"]
    errors = []
    if "const" in schema and not _same(value, schema["const"]):
        errors.append(f"{where}: {value!r} is not {schema['const']!r}")
    if "enum" in schema and not any(_same(value, e) for e in schema["enum"]):
        errors.append(f"{where}: {value!r} is not one of {schema['enum']}")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        errors += [f"{where}: {k!r} is missing" for k in schema.get("required", []) if k not in value]
        extra = schema.get("additionalProperties", True)
        for k, v in value.items():
            if k in props:
                errors += schema_errors(v, props[k], f"{where}.{k}")
            elif extra is False:
                errors.append(f"{where}: unexpected key {k!r}")
            elif isinstance(extra, dict):
                errors += schema_errors(v, extra, f"{where}.{k}")
    if isinstance(value, list):
        if "items" in schema:
            for i, v in enumerate(value):
                errors += schema_errors(v, schema["items"], f"{where}[{i}]")
        if len(value) < schema.get("minItems", 0) or len(value) > schema.get("maxItems", len(value)):
            errors.append(f"{where}: {len(value)} items")
        if schema.get("uniqueItems") and len({json.dumps(v, sort_keys=True) for v in value}) != len(value):
            errors.append(f"{where}: repeated items")
    if isinstance(value, str):
        if not schema.get("minLength", 0) <= len(value) <= schema.get("maxLength", len(value)):
            errors.append(f"{where}: length {len(value)}")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            errors.append(f"{where}: {value!r} does not match {schema['pattern']}")
    if _TYPES["number"](value):
        if value < schema.get("minimum", value) or value > schema.get("maximum", value):
            errors.append(f"{where}: {value} out of range")
        if "exclusiveMinimum" in schema and not value > schema["exclusiveMinimum"]:
            errors.append(f"{where}: {value} not above {schema['exclusiveMinimum']}")
    return errors


def _record(**changes: object) -> DatasetRecord:
    """A small record of every kind of entry: ok and failed clips, decode errors, an official split."""
    clips = (
        ClipEntry("train", "run", 0, "r1", "r1.avi", "ok", 8, 7, decode_errors=2),
        ClipEntry("train", "walk", 1, "w1", "w1.avi", "ok", 8, 7),
        ClipEntry("val", "walk", 1, "w2", "w2.avi", "failed", 0, 0, error="cannot open video"),
    )
    fields = dict(
        modality="both",
        classes=("run", "walk"),
        clips=clips,
        split=SplitInfo("official", 1, None, None, None, {"run": SideCounts(1, 0), "walk": SideCounts(1, 1)}),
        decode=DecodeInfo(None, (320, 240), 2),
        rgb=RgbInfo("jpg", 90),
        flow=FlowInfo("dis", {"preset": "fast", "grid": [4, 4]}, "cpu"),
        encoding=FlowEncoding("fixed", 20.0, "jpg", 95),
        layout="tao",
        source=SourceInfo("hmdb51", (SourceFile("hmdb51_org.rar", size=123), SourceFile("splits", kind="folder")), 3),
        normalization=Normalization(),
        excluded=("walk/bad.avi (skipped: empty name)",),
        counts={"run": SideCounts(1, 0), "walk": SideCounts(1, 0)},
        flowprep_version="0.1.0",
    )
    fields.update(changes)
    return DatasetRecord(**fields)  # type: ignore[arg-type]


def test_schema_validator_catches_what_it_should():
    good = _record().to_dict()
    assert schema_errors(good, SCHEMA) == []
    bad = json.loads(json.dumps(good))
    bad["clips"][0]["frames"] = "8"
    bad["classes"][0] = "a;b"
    bad["extra"] = 1
    del bad["split"]["seed"]
    errors = schema_errors(bad, SCHEMA)
    assert len(errors) == 4, errors


def test_every_kind_of_entry_round_trips_and_follows_the_schema():
    rec = _record()
    data = json.loads(dump_json(rec.to_dict()))
    assert schema_errors(data, SCHEMA) == []
    assert record_from_dict(data) == rec
    assert "decode_errors" in data["clips"][0] and "decode_errors" not in data["clips"][1]
    assert data["clips"][2]["error"] == "cannot open video" and "error" not in data["clips"][0]


def test_ucf101_split_details_and_packed_round_trip():
    from flowprep.layout.dataset_record import PackedInfo

    split = SplitInfo(
        "official",
        1,
        counts={"run": SideCounts(1, 0), "walk": SideCounts(1, 1)},
        convention="ucf101",
        lists={"train": "trainlist01.txt", "val": "testlist01.txt"},
        classes_from="classInd.txt",
        missing={"train": ("walk/x.avi",), "val": ()},
    )
    rec = _record(split=split, packed=PackedInfo("webdataset", "shards/index.json"))
    data = json.loads(dump_json(rec.to_dict()))
    assert schema_errors(data, SCHEMA) == [] and record_from_dict(data) == rec
    assert data["split"]["missing"] == {"train": ["walk/x.avi"], "val": []} and "folders" not in data["split"]
    assert data["packed"] == {"format": "webdataset", "index": "shards/index.json"}
    assert "packed" not in _record().to_dict()
    bad = dict(data, packed={"format": "webdataset", "index": "../../etc/passwd"})
    with pytest.raises(FieldError, match="packed.index must be a relative path inside the dataset"):
        record_from_dict(bad)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"layout": "tao"},
        {"layout": "mmaction2", "modality": "rgb", "short_side": 48, "rgb_format": "jpg"},
        {"modality": "flow", "size": (64, 48), "frame_step": 2, "seed": 7, "split_by": "clip"},
    ],
)
def test_what_the_builder_writes_follows_the_schema_and_reads_back(tiny_release, tmp_path, kwargs):
    from flowprep.builder.api import build
    from flowprep.builder.config import BuildConfig

    out = tmp_path / "out"
    build(
        BuildConfig(source=tiny_release, out=out, flow="dis", jobs=1, progress=False, classes=["walk", "run"], **kwargs)
    )
    text = (out / "flowprep.json").read_text(encoding="utf-8")
    assert schema_errors(json.loads(text), SCHEMA) == []
    rec = read_record(out)
    assert dump_json(rec.to_dict()) == text  # the writer gives back the very bytes it wrote
    assert list(rec.classes) == ["walk", "run"] and all(c.ok for c in rec.clips)


@pytest.mark.parametrize("modality", ["both", "rgb", "flow"])
def test_what_synthdata_writes_follows_the_schema_with_the_builders_keys(tmp_path, modality):
    from flowprep.train.synthdata import make_tao_dataset

    rec = make_tao_dataset(
        tmp_path / "ds", train_per_class=1, val_per_class=1, frames=2, height=16, width=16, modality=modality
    )
    data = json.loads((tmp_path / "ds" / "flowprep.json").read_text())
    assert schema_errors(data, SCHEMA) == []
    assert set(data) == set(SCHEMA["required"]) and read_record(tmp_path / "ds") == rec
    assert (data["encoding"] is None) == (modality == "rgb") and (data["rgb"] is None) == (modality == "flow")


def test_write_record_refuses_what_it_could_not_read(tmp_path):
    with pytest.raises(DatasetError, match=r"refusing to write .*classes\[0\] must be a usable name \(a ';'"):
        write_record(tmp_path, _record(classes=("a;b", "walk")))
    with pytest.raises(DatasetError, match=r"encoding must be an object \(the modality 'both' has flow images\)"):
        write_record(tmp_path, _record(encoding=None))
    assert not (tmp_path / "flowprep.json").exists()


@pytest.fixture()
def ds(tmp_path) -> Path:
    from flowprep.train.synthdata import make_tao_dataset

    make_tao_dataset(tmp_path / "ds", {"run": (1.0, 0.0), "walk": (-1.0, 0.0)}, 1, 1, frames=2, height=16, width=16)
    return tmp_path / "ds"


def _edit(ds: Path, change) -> None:
    rec = json.loads((ds / "flowprep.json").read_text())
    change(rec)
    (ds / "flowprep.json").write_text(json.dumps(rec))


def _set(dotted: str, value: object):
    def change(rec: dict) -> None:
        node = rec
        *parents, last = dotted.split(".")
        for p in parents:
            node = node[int(p)] if isinstance(node, list) else node[p]
        node[int(last) if isinstance(node, list) else last] = value

    return change


BAD = {
    "frames a string": (_set("clips.0.frames", "x"), "clips[0].frames must be a whole number in [0, 1080000], got 'x'"),
    "classes numbers": (_set("classes", [1, 2]), "classes[0] must be a usable name (not a string but int), got 1"),
    "class with ;": (_set("classes.0", "a;b"), "classes[0] must be a usable name (a ';' in the name"),
    "class with a line break": (_set("classes.1", "le\nft"), "classes[1] must be a usable name (a control character"),
    "label off": (_set("clips.0.label", 1), "clips[0].label must be 0 (the index of its class), got 1"),
    "size of three": (_set("decode.size", [16, 16, 3]), "decode.size must be [width, height], got [16, 16, 3]"),
    "size too big": (_set("decode.size", [16, 100000]), "decode.size[1] must be a whole number in [16, 8192]"),
    "bound zero": (_set("encoding.bound", 0), "encoding.bound must be a number in (0, 1.79769e+308], got 0"),
    "no encoding": (_set("encoding", None), "encoding must be an object (the modality 'both' has flow images)"),
    "newer format": (_set("format_version", 2), "format_version must be at most 1 (this flowprep's; upgrade"),
    "modality missing": (lambda r: r.pop("modality"), ": modality is missing (the record was edited"),
    "flow params a list": (_set("flow.params", [1]), "flow.params must be an object, got [1]"),
    "counts of a stranger": (_set("counts", {"zz": {"train": 1}}), "counts.zz must be a class of the record"),
    "seed a float": (_set("split.seed", 1.5), "split.seed must be a whole number"),
    "deep nesting": (_set("flow.params", json.loads("[" * 200 + "]" * 200)), "nested deeper than 64 levels"),
}


@pytest.mark.parametrize(("change", "message"), BAD.values(), ids=BAD.keys())
def test_a_bad_record_is_one_line_naming_file_and_field(ds, change, message):
    _edit(ds, change)
    for cmd in ("verify", "stats"):
        res = run_cli(cmd, ds)
        assert res.exit_code == 1 and "Traceback" not in res.output
        lines = res.output.strip().splitlines()
        assert len(lines) == 1 and str(ds / "flowprep.json") in lines[0] and message in lines[0], lines


def test_training_reads_the_same_checked_record(ds, tmp_path):
    _edit(ds, _set("clips.0.frames", -3))
    res = run_cli("train", ds, "--out", tmp_path / "run", "--no-progress")
    assert res.exit_code == 1 and "clips[0].frames must be a whole number in [0, 1080000], got -3" in res.output
    assert len(res.output.strip().splitlines()) == 1


def test_mutated_records_raise_only_field_errors(ds):
    """Thousands of random one-field changes of a real record: the reader accepts or raises FieldError."""
    base = json.loads((ds / "flowprep.json").read_text())
    rng = random.Random(16)
    refused = 0
    for _ in range(3000):
        data = mutate(base, rng)
        try:
            record_from_dict(data)
        except FieldError:
            refused += 1
    assert 1000 < refused < 3000  # most changes break the schema; some (an equal value, a dropped default) do not


def test_property_any_json_value_raises_only_field_errors():
    hypothesis = pytest.importorskip("hypothesis")
    st = pytest.importorskip("hypothesis.strategies")
    values = json_values(st)
    keys = st.sampled_from(
        [
            "format",
            "format_version",
            "modality",
            "classes",
            "clips",
            "split",
            "decode",
            "rgb",
            "flow",
            "encoding",
            "source",
            "normalization",
            "counts",
            "excluded",
            "layout",
        ]
    )
    shaped = st.fixed_dictionaries({"format": st.just("flowprep-dataset"), "format_version": st.just(1)}).flatmap(
        lambda head: st.dictionaries(keys, values, max_size=15).map(lambda rest: {**rest, **head})
    )

    @hypothesis.settings(max_examples=400, deadline=None)
    @hypothesis.given(st.one_of(values, shaped))
    def check(data: object) -> None:
        try:
            record_from_dict(data)
        except FieldError:
            pass

    check()


TAMPER = {
    "classes deleted": lambda r: r.pop("classes"),
    "clips null": lambda r: r.__setitem__("clips", None),
    "frames a string": lambda r: r["clips"][0].__setitem__("frames", "6"),
    "clip name ..": lambda r: r["clips"][0].__setitem__("name", ".."),
    "clip id escapes": lambda r: r["clips"][0].__setitem__("id", "../../outside"),
    "class name ..": lambda r: r.__setitem__("classes", ["..", "walk"]),
    "absolute name": lambda r: r["clips"][0].__setitem__("name", "/etc"),
    "name not a string": lambda r: r["clips"][0].__setitem__("name", 5),
    "encoding damaged": lambda r: r.__setitem__("encoding", {"mode": "fixed", "bound": "x"}),
    "clip not an object": lambda r: r["clips"].__setitem__(0, []),
    # nested fields the preview page and stats format (they tracebacked before the schema covered them)
    "split a list": lambda r: r.__setitem__("split", [1]),
    "source a string": lambda r: r.__setitem__("source", "x"),
    "flow a string": lambda r: r.__setitem__("flow", "x"),
    "decode a number": lambda r: r.__setitem__("decode", 7),
    "normalization a number": lambda r: r.__setitem__("normalization", 3),
    "counts per class a number": lambda r: r.__setitem__("counts", {"walk": 5}),
    "planned counts a string": lambda r: r["split"].__setitem__("counts", {"walk": {"train": "3"}}),
    "source size a string": lambda r: r["source"].__setitem__("files", [{"name": "a", "size": "big"}]),
    "clip listed twice": lambda r: r["clips"].append(dict(r["clips"][0])),
    "clip source null": lambda r: r["clips"][0].__setitem__("source", None),
    "clip source deleted": lambda r: r["clips"][0].pop("source"),
}


@pytest.mark.parametrize("tamper", TAMPER.values(), ids=TAMPER.keys())
def test_tampered_record_is_one_line(tamper, small_dataset_copy):
    rec = json.loads((small_dataset_copy / "flowprep.json").read_text())
    tamper(rec)
    (small_dataset_copy / "flowprep.json").write_text(json.dumps(rec))
    for args in (
        ["verify", small_dataset_copy],
        ["stats", small_dataset_copy],
        ["preview", small_dataset_copy, "--out", small_dataset_copy.parent / "p"],
    ):
        out = invoke_checked(*args, code=1)
        assert "flowprep.json" in out and len(out.strip().splitlines()) == 1
    assert not (small_dataset_copy.parent / "p").exists()
