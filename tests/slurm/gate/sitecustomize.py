"""Test hook of tests/test_slurm.py, on PYTHONPATH only in the gated array task (gated_flowprep.sh).

A clip is committed by one rename out of ``OUT/.flowprep-tmp/``. The task's first commit goes
through; the next one (in whichever worker process) marks the task running (``GATE_DIR/running-K``)
and waits for ``GATE_DIR/open``, which the test never creates: it cancels the task there, mid-build,
with one clip of the shard finished and the next one written but not yet renamed into place. No
timing race.
"""

from __future__ import annotations

import os
import time
from typing import Any

_GATE = os.environ["GATE_DIR"]
_rename = os.rename


def _gated_rename(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
    if f"{os.sep}.flowprep-tmp{os.sep}" in os.fspath(src):
        try:  # the first commit of the task (any process) passes and leaves this marker
            os.close(os.open(os.path.join(_GATE, "first-commit"), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            open(os.path.join(_GATE, f"running-{os.environ.get('SLURM_ARRAY_TASK_ID')}"), "w").close()
            while not os.path.exists(os.path.join(_GATE, "open")):
                time.sleep(0.2)
    _rename(src, dst, *args, **kwargs)


os.rename = _gated_rename
