#!/usr/bin/env bash
# Pages while a class trains (docs/performance.md, "Pages while a class trains"): the Classify answer (one image
# through the four networks, ten views, predict's own path) and the Stress test's PGD-10 attack search, each on
# one thread as the app runs, in three settings:
#   idle                  nothing else running;
#   beside the app        a ResNet run on any core, as when the app started its trainers itself;
#   on the other cores    the same run on a worker's cores, all but the first (public mode's default,
#                         runs/engine.worker_cpus), the measurement left where the OS puts it, as the app is.
# Stop other work first (a long run: kill -STOP PID, then kill -CONT PID). Needs two cores or more.
set -eu
cd "$(dirname "$0")/.."
py=${PYTHON:-python}
data=${CIFARNETS_DATA:-../shared/data/cifar10-jpeg.tar.gz}
out=$(mktemp -d)
images=(cifarnets/examples/*.jpg)
last=$(( $(nproc) - 1 ))

measure() {
    echo "== $1 (load average $(cut -d' ' -f1 /proc/loadavg))"
    "$py" - <<'PY'
import statistics, time, torch
from cifarnets.perf.latency import networks, inference_ms
torch.set_num_threads(1)  # as the app
entries, _ = networks("checkpoints", torch.device("cpu"))
print(f"Classify, one image through the four: median {statistics.median(inference_ms(entries, 30) for _ in range(3)):.1f} ms")
PY
    "$py" -m cifarnets stresstime "${images[@]}" --corruptions fog | tail -1
}

train() {  # $1: taskset prefix or nothing; a ResNet epoch is minutes: it trains through the measurement
    $1 "$py" -m cifarnets train --model resnet --recipe fast --epochs 3 --data "$data" --out "$out/run-$2" \
        > "$out/train-$2.log" 2>&1 &
    pid=$!
}

wait_training() {  # until the run's first batches: loading the data is not what a class sees for minutes
    until grep -q "batch/s" "$out/train-$1.log" 2>/dev/null; do sleep 2; done
}

measure "idle"
train "" beside; wait_training beside
measure "a run beside the app (any core)"
kill -TERM "$pid"; wait "$pid" || true
train "taskset -c 1-$last" pinned; wait_training pinned
measure "the run on the other cores (1-$last)"
kill -TERM "$pid"; wait "$pid" || true
rm -rf "$out"
