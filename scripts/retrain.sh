#!/usr/bin/env bash
# Train networks for shipping, one after another, each in $RUNS/<key> (outside the repository, so a
# checkout, a clean or a CI clone never touches them). Safe to run again at any time: a run with a saved
# state continues where it stopped (--resume; a finished one returns at once), a run without one starts
# over. So after a stopped session, on the same machine, the same command picks everything up.
#
#   RUNS=~/cifarnets-runs OMP_NUM_THREADS=1 nohup scripts/retrain.sh cnn densenet > ~/cifarnets-runs/a.log 2>&1 &
#
# Then `python -m cifarnets evaluate --checkpoint $RUNS/<key>` measures a run as the app answers, and
# copying its checkpoint files into checkpoints/<key>/ ships it (docs/training.md, "Shipping a network").
set -u
cd "$(dirname "$0")/.."
runs=${RUNS:-$HOME/cifarnets-runs}
data=${CIFARNETS_DATA:-../shared/data/cifar10-jpeg.tar.gz}
recipe=${RECIPE:-modern}
python=${PYTHON:-python}
read -r -a extra <<< "${TRAIN_ARGS:-}"  # e.g. TRAIN_ARGS="--device cuda"
mkdir -p "$runs"
for key in "$@"; do
    out="$runs/$key"
    resume=()
    [ -f "$out/train_state.pt" ] && resume=(--resume)
    echo "$(date -u +%FT%TZ) $key: ${resume[*]:-starting}" >&2
    "$python" -m cifarnets train --model "$key" --recipe "$recipe" --data "$data" --out "$out" "${resume[@]}" "${extra[@]}" \
        || echo "$(date -u +%FT%TZ) $key: exited $?" >&2
done
