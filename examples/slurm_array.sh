#!/usr/bin/env bash
# Build a dataset with a Slurm job array: N independent tasks each build 1/N of the clips into one
# shared output folder, then a dependent job writes the record (finalize) and checks it (verify).
#
#   bash examples/slurm_array.sh /shared/releases/hmdb51_org.rar /shared/datasets/hmdb51 16
#
# Every node must see SOURCE and OUT at the same paths (a shared file system). Re-submitting is
# safe: finished clips are kept, a task killed mid-clip leaves only a temporary folder, and a task
# that is re-run builds only what its part still lacks. `flowprep finalize OUT` names any missing
# clip and the shard that owns it; re-submit just those shards with TASKS, e.g.
#
#   TASKS=2,5 bash examples/slurm_array.sh /shared/releases/hmdb51_org.rar /shared/datasets/hmdb51 16
#
# Tested on a single-node Slurm (tests/test_slurm.py): 3 tasks + the finalize job, and a cancelled
# task re-submitted with TASKS, give the same bytes as a local `flowprep build`.
#
# Environment (optional):
#   FLOWPREP      the flowprep command            [flowprep]
#   FLOW          flow backend                    [tvl1]   (nvof on GPU nodes, see GPUS_PER_TASK)
#   CPUS_PER_TASK cores per task (= worker processes per task)                     [8]
#   GPUS_PER_TASK GPUs per task for --flow nvof (0 = CPU only)                      [0]
#   MEM_PER_CPU   memory per core                                                  [2G]
#   TASKS         array indices to submit (a re-run of some shards), e.g. 2,5 or 3-4 [1-N_TASKS]
#   EXTRA         more `flowprep build` options, e.g. "--classes walk,run --layout mmaction2"
#   SBATCH_EXTRA  more sbatch options, e.g. "--partition=cpu --account=myproj"
set -euo pipefail

if [[ $# -lt 3 ]]; then
    echo "usage: $0 SOURCE OUT N_TASKS" >&2
    exit 2
fi
SOURCE=$(realpath "$1")
OUT=$(realpath -m "$2")
N=$3
if ! [[ $N =~ ^[1-9][0-9]*$ ]]; then
    echo "$0: N_TASKS must be a whole number >= 1, got '$N'" >&2
    exit 2
fi
FLOWPREP=${FLOWPREP:-flowprep}
FLOW=${FLOW:-tvl1}
CPUS=${CPUS_PER_TASK:-8}
GPUS=${GPUS_PER_TASK:-0}
MEM=${MEM_PER_CPU:-2G}
TASKS=${TASKS:-1-$N}
EXTRA=${EXTRA:-}
SBATCH_EXTRA=${SBATCH_EXTRA:-}
LOGS="$OUT.logs"
mkdir -p "$LOGS"
# sbatch reads % in --output as a pattern (%A, %j, ...): a literal % in the folder's name is %%
LOGS_PATTERN="${LOGS//%/%%}"

# sbatch --wrap hands its string to /bin/sh: quote the paths for it ('it'\''s'), so a path with a
# space or a quote (HMDB51's own names hold quotes) stays one word and runs nothing else
shq() { local s=${1//\'/\'\\\'\'}; printf "'%s'" "$s"; }
Q_SOURCE=$(shq "$SOURCE")
Q_OUT=$(shq "$OUT")

GRES=()
GPU_OPT=""
if [[ "$GPUS" -gt 0 ]]; then
    GRES=(--gres="gpu:$GPUS")
    # Slurm sets CUDA_VISIBLE_DEVICES for the task: "all" is the GPUs it was given, and each of
    # the task's worker processes binds its own one of them.
    GPU_OPT="--gpus all"
fi

# One array task = one shard. All tasks share the same settings, so they share one fingerprint;
# the first to start sets up OUT, the others join it.
build_id=$(sbatch --parsable $SBATCH_EXTRA \
    --job-name=flowprep-build --array="$TASKS" \
    --cpus-per-task="$CPUS" "${GRES[@]}" --mem-per-cpu="$MEM" --time=04:00:00 \
    --output="$LOGS_PATTERN/build-%A_%a.log" \
    --wrap="$FLOWPREP build $Q_SOURCE --out $Q_OUT --flow $FLOW $GPU_OPT -j $CPUS --no-progress $EXTRA \
            --shard \$SLURM_ARRAY_TASK_ID/$N")
echo "submitted build array $build_id (tasks $TASKS of $N)"

# The last task to finish already writes the record; this job makes sure of it (a shared file
# system may show one node's clips to another a little late) and verifies the whole dataset.
# afterany: it also runs if a task failed, so its log names the missing clips (exit 1).
final_id=$(sbatch --parsable $SBATCH_EXTRA \
    --job-name=flowprep-finalize --dependency="afterany:$build_id" \
    --cpus-per-task="$CPUS" --mem-per-cpu="$MEM" --time=01:00:00 \
    --output="$LOGS_PATTERN/finalize-%j.log" \
    --wrap="$FLOWPREP finalize $Q_OUT && $FLOWPREP verify $Q_OUT -j $CPUS --quick")
echo "submitted finalize + verify job $final_id (runs after the array); logs in $LOGS"
