#!/usr/bin/env bash
# HMDB5 from the official HMDB51 release to a deployed model, end to end.
#
#   examples/hmdb5_end_to_end.sh /path/to/hmdb51_org.rar /path/to/test_train_splits.rar [workdir]
#   examples/hmdb5_end_to_end.sh            # the small built-in sample, in ./work-hmdb5 (or $WORK)
#
# On the real release it uses the card's settings (32 frames, 224x224, 30 epochs: a GPU job); on the
# sample, settings small enough for a CPU (about a minute on 2 cores).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
flowprep=${FLOWPREP:-"$here/.venv/bin/flowprep"}
work=${3:-${WORK:-work-hmdb5}}
mkdir -p "$work"
if [ $# -ge 2 ] && [ -n "$1" ]; then
  archive=$1; splits=$2; flow=${FLOW:-tvl1}; frames=32; size=224; epochs=30; hflip=0.5; optim="sgd --lr 0.01"
else
  "$here/.venv/bin/python" -c "from flowprep.demo import make_demo_release; from pathlib import Path; make_demo_release(Path('$work/release'))"
  archive=$work/release/hmdb51_org.rar; splits=$work/release/test_train_splits.rar
  # the sample's classes differ by motion direction, which a horizontal flip would swap
  # and 40 training clips want a gentler optimizer than TAO's SGD defaults
  flow=${FLOW:-tvl1-fast}; frames=8; size=64; epochs=8; hflip=0; optim="adamw --lr 0.001"
fi

# 1. unpack only the five classes, split 90/10 by source video, decode, compute flow (resumable)
"$flowprep" build-hmdb5 --archive "$archive" --splits "$splits" --out "$work/hmdb5" --flow "$flow"
"$flowprep" verify "$work/hmdb5"
"$flowprep" stats "$work/hmdb5"

# 2. train a 3D flow model and evaluate it with both protocols
"$flowprep" train "$work/hmdb5" --modality of --arch 3d --frames "$frames" --input-size "$size" \
  --epochs "$epochs" --hflip "$hflip" --optimizer $optim --out "$work/runs/of3d"
"$flowprep" evaluate "$work/runs/of3d/best.pt" "$work/hmdb5/val" --mode all

# 3. export ONNX (+ Triton/DeepStream files; a TensorRT engine where TensorRT and a GPU exist)
"$flowprep" export "$work/runs/of3d/best.pt" --out "$work/deploy/of3d"

# 4. classify a video stream with the exported model (flow computed on the fly, as recorded)
video="$here/../shared/data/carphone_pristine.mp4"
if [ -f "$video" ]; then
  "$flowprep" infer "$video" --model "$work/deploy/of3d/model.onnx" --output "$work/annotated.mp4"
fi
