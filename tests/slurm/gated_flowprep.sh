#!/usr/bin/env bash
# The FLOWPREP command of tests/test_slurm.py: `python -m flowprep "$@"` with the checkout under test,
# except that array task $GATE_TASK first marks itself running ($GATE_DIR/running-<task>) and then
# waits for $GATE_DIR/open. The test cancels it there, so it is certainly running when cancelled,
# without a timing race.
set -euo pipefail
if [[ -n ${GATE_TASK:-} && ${SLURM_ARRAY_TASK_ID:-} == "$GATE_TASK" ]]; then
    touch "$GATE_DIR/running-$SLURM_ARRAY_TASK_ID"
    until [[ -e $GATE_DIR/open ]]; do sleep 0.2; done
fi
exec "$FLOWPREP_PYTHON" -m flowprep "$@"
