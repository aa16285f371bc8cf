#!/usr/bin/env bash
# The FLOWPREP command of tests/test_slurm.py: `python -m flowprep "$@"` with the checkout under test.
# In array task $GATE_TASK, gate/sitecustomize.py is loaded too: it holds the task's second clip
# commit until $GATE_DIR/open exists, so the test can cancel the task mid-build, without a race.
set -euo pipefail
if [[ -n ${GATE_TASK:-} && ${SLURM_ARRAY_TASK_ID:-} == "$GATE_TASK" ]]; then
    export PYTHONPATH="$(dirname "$(realpath "$0")")/gate${PYTHONPATH:+:$PYTHONPATH}"
fi
exec "$FLOWPREP_PYTHON" -m flowprep "$@"
