"""ONNX Runtime vs PyTorch latency per window on the CPU (batch 1), for TAO-sized models.

    python bench/bench_infer.py                       # 2d and 3d RGB, 32 frames, 224x224
    python bench/bench_infer.py --configs 3d:of --frames 16 --size 112 --repeats 5 --json out.json

Weights are random (latency does not depend on them). Each configuration: build the model, export it
with flowprep's exporter (TorchScript, opset 17, dynamic batch), one warm-up run each, then the
median of ``--repeats`` timed runs. Threads: both runtimes use ``--threads`` (default: all cores).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _time(fn, repeats: int) -> list[float]:
    fn()  # warm-up: allocations, kernel selection
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000.0)
    return out


def bench_one(arch: str, modality: str, frames: int, size: int, repeats: int, threads: int) -> dict:
    import onnxruntime as ort
    import torch

    from flowprep.export.onnx_export import export_onnx, random_inputs
    from flowprep.loader.spec import input_shapes
    from flowprep.train.models import build_model

    torch.set_num_threads(threads)
    model = build_model(arch, modality, 51, frames=frames).eval()
    shapes = input_shapes(arch, modality, frames, size)
    inputs = random_inputs(shapes, batch=1)
    with tempfile.TemporaryDirectory() as d:
        path = export_onnx(model, shapes, Path(d) / "model.onnx")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        ort_ms = _time(lambda: sess.run(["fc_pred"], inputs), repeats)
    xs = [torch.from_numpy(a) for a in inputs.values()]

    def run_torch():
        with torch.inference_mode():
            model(*xs)

    torch_ms = _time(run_torch, repeats)
    return {
        "arch": arch,
        "modality": modality,
        "frames": frames,
        "size": size,
        "threads": threads,
        "onnxruntime_ms": round(statistics.median(ort_ms), 1),
        "pytorch_ms": round(statistics.median(torch_ms), 1),
        "speedup": round(statistics.median(torch_ms) / statistics.median(ort_ms), 2),
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", default="2d:rgb,3d:rgb", help="comma-separated arch:modality")
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    a = ap.parse_args(argv)
    import onnxruntime
    import torch

    rows = []
    print(
        f"# CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; torch {torch.__version__}, "
        f"onnxruntime {onnxruntime.__version__}; batch 1, median of {a.repeats}"
    )
    print(f"{'model':<10} {'T':>3} {'S':>4} {'ORT ms':>9} {'torch ms':>9} {'speedup':>8}")
    for cfg in a.configs.split(","):
        arch, modality = cfg.split(":")
        r = bench_one(arch, modality, a.frames, a.size, a.repeats, a.threads)
        rows.append(r)
        print(
            f"{arch + ' ' + modality:<10} {a.frames:>3} {a.size:>4} {r['onnxruntime_ms']:>9.1f} "
            f"{r['pytorch_ms']:>9.1f} {r['speedup']:>7.2f}x",
            flush=True,
        )
    if a.json:
        a.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
