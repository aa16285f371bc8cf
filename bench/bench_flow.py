"""Benchmark of the flow backends: ``python bench/bench_flow.py [out.json]``.

The same measurement as ``flowprep bench-flow`` (default settings: 320x240 carphone frames warped by
smooth fields of 2..30 px, one OpenCV thread), saved as JSON with the terminal table printed. The
table in docs/flow.md comes from this.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from flowprep.flow.bench import bench_flow
from flowprep.flow.bench_report import format_table
from flowprep.limits import json_safe


def main(argv: list[str]) -> None:
    out = Path(argv[0]) if argv else Path("bench_flow.json")
    result = bench_flow(plot=out.with_suffix(".png"), vis_dir=out.parent / "flow_vis")
    out.write_text(json.dumps(json_safe(result.to_dict()), indent=2, allow_nan=False))
    print(format_table(result))
    print(f"wrote {out}")


if __name__ == "__main__":
    main(sys.argv[1:])
