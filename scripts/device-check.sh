#!/usr/bin/env bash
# The GPU path in one call of the device tool (issue 33; docs/testing.md, "GPU"). Writes under $OUT:
#   device-check.log     everything, step by step, with the machine (nvidia-smi, torch, CUDA, cuDNN)
#   pytest-cuda.xml      `pytest -m cuda` (tests/test_cuda.py), as JUnit XML
#   bench.json           `cifarnets bench --device cuda --json`
#   speedrun-report.json `cifarnets speedrun --model all --recipe fast --target report`
#   speedrun-floor.json  `--target floor`, one network after another, while at most FLOOR_S (180) seconds last
# All at the top of $OUT: the device returns at most 8 files, none deeper than two folders.
#
# The device machine gets the repository, not ../shared, and its Python has torch, numpy, safetensors,
# huggingface_hub and pytest but not Streamlit or Altair. So first, here, in the checkout:
#   scripts/device-check.sh prepare
# which copies the CIFAR-10 archive into .device/ (git-ignored) and downloads the missing packages as
# wheels into .device/wheels (about 43 MB in all, under the tool's 64 MiB). Then the call:
#   run(command="scripts/device-check.sh", carry=[".device"], timeout_s=480)
# It ends inside BUDGET_S=420 seconds whatever happens (each step is capped, the floors get what is left),
# so with the machine's start (1-2 minutes) the call leaves about 5 of the 15 device minutes: enough to rerun
# what failed, at once while the machine is warm, with ONLY naming the steps (pytest bench report floor), e.g.
#   run(command="ONLY=pytest scripts/device-check.sh", carry=[".device"], timeout_s=240)
# then give_back.
#
# Here, on the CPU, on a small slice of the data, in a few minutes (OUT: a fresh folder in /tmp when unset):
#   DEVICE=cpu SMALL=1 scripts/device-check.sh
# (the slice: 100 training and 20 test images a class; the speedruns one epoch; the bench the CNN, 3 steps).
set -uo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
WHEELS="streamlit==1.67.0 altair==6.3.0 pydeck==0.9.3 starlette==1.10.0 uvicorn==0.55.0 python-multipart==0.0.34
  websockets==17.4 itsdangerous==2.2.0 watchdog==7.1.1 jsonschema==4.26.0 jsonschema-specifications==2025.9.1
  referencing==0.37.0 rpds-py==2026.9.1"

if [ "${1:-}" = prepare ]; then  # here, before the call
  set -e
  mkdir -p .device/wheels
  cp "${CIFARNETS_DATA:-../shared/data/cifar10-jpeg.tar.gz}" .device/cifar10-jpeg.tar.gz
  # the device's Python: 3.12 on x86-64 (the device tool's README); --no-deps: what it already has stays
  # shellcheck disable=SC2086
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux1_x86_64 -d .device/wheels $WHEELS
  du -sh .device
  exit 0
fi

DEVICE=${DEVICE:-cuda}
SMALL=${SMALL:-0}
# The whole script's seconds; each step has its own cap inside them. A shared 2-core CPU, even on the small
# slice, is far slower than the H200 the caps are sized for, so there every cap is SCALE times longer.
if [ "$SMALL" = 1 ]; then BUDGET_S=${BUDGET_S:-2400}; SCALE=${SCALE:-6}; else BUDGET_S=${BUDGET_S:-420}; SCALE=${SCALE:-1}; fi
ONLY=" ${ONLY:-pytest bench report floor} "
FLOOR_S=${FLOOR_S:-$((180 * SCALE))}
OUT=${OUT:-$(mktemp -d /tmp/device-check.XXXXXX)}
WORK=$(mktemp -d /tmp/device-check-work.XXXXXX)  # caches and the small slice: never under $OUT
mkdir -p "$OUT"
LOG="$OUT/device-check.log"
exec > >(tee -a "$LOG") 2>&1
export PYTHONUNBUFFERED=1 CIFARNETS_CACHE="$WORK/cache"
START=$SECONDS
FAILED=()

say() { printf '\n==== [%3ds] %s\n' $((SECONDS - START)) "$*" >&2; }  # stderr: a step's stdout may be its JSON
wanted() { [[ "$ONLY" == *" $1 "* ]]; }
left() { echo $((BUDGET_S - (SECONDS - START))); }
# step NAME CAP_S COMMAND...: runs it under `timeout`, capped by what is left of the budget; notes a failure,
# except a timeout where TIMEOUT_OK is set (a floor run cut off: it runs "for as long as the budget allows")
step() {
  local name=$1 cap=$(($2 * SCALE)); shift 2
  local limit=$(( cap < $(left) ? cap : $(left) ))
  if [ "$limit" -lt 10 ]; then
    say "$name: not run, the budget is spent"; [ -n "${TIMEOUT_OK:-}" ] || FAILED+=("$name (no time)"); return 1
  fi
  say "$name (at most ${limit}s): $*"
  timeout --kill-after=10 "$limit" "$@"
  local rc=$?
  if [ $rc -eq 124 ] && [ -n "${TIMEOUT_OK:-}" ]; then say "$name: cut off at its time"; return $rc; fi
  [ $rc -eq 0 ] || { say "$name: exit $rc$([ $rc -eq 124 ] && echo ', timed out')"; FAILED+=("$name"); }
  return $rc
}

say "device-check: DEVICE=$DEVICE SMALL=$SMALL BUDGET_S=$BUDGET_S OUT=$OUT"
if [ -n "$(ls .device/wheels/*.whl 2>/dev/null)" ] && ! "$PY" -c "import streamlit, altair" 2>/dev/null; then
  say "installing the carried wheels into $WORK/site"
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$WORK/site" \
    .device/wheels/*.whl && export PYTHONPATH="$WORK/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}"  # this checkout's cifarnets, also in torchrun's children

say "the machine"
command -v nvidia-smi >/dev/null && nvidia-smi
grep -m1 'model name' /proc/cpuinfo; nproc
"$PY" - <<'EOF'
import torch
print("torch", torch.__version__, "| CUDA", torch.version.cuda, "| cuDNN", torch.backends.cudnn.version(),
      "| GPU:", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none")
for name in ("torchvision", "numpy", "safetensors", "huggingface_hub", "pytest", "streamlit", "altair"):
    try:
        print(name, __import__(name).__version__)
    except ImportError:
        print(name, "missing")
EOF

DATA=${CIFARNETS_DATA:-.device/cifar10-jpeg.tar.gz}
[ -f "$DATA" ] || DATA=../shared/data/cifar10-jpeg.tar.gz
if [ ! -f "$DATA" ]; then
  say "no CIFAR-10 archive: run 'scripts/device-check.sh prepare' here first, and carry .device"; exit 2
fi
if [ "$SMALL" = 1 ]; then  # 100 training and 20 test images a class, taken from the archive
  "$PY" - "$DATA" "$WORK/small.tar.gz" <<'EOF'
import sys, tarfile
from collections import Counter
taken, keep = Counter(), {"train": 100, "test": 20}
with tarfile.open(sys.argv[1]) as src, tarfile.open(sys.argv[2], "w:gz") as out:
    for m in src:
        parts = m.name.split("/")
        split = next((p for p in parts if p in keep), None)
        if m.isfile() and split and taken[parts[-2], split] < keep[split]:
            taken[parts[-2], split] += 1
            out.addfile(m, src.extractfile(m))
print(f"small slice: {sum(taken.values())} images")
EOF
  DATA="$WORK/small.tar.gz"
fi
export CIFARNETS_DATA="$DATA"  # test_cuda.py reads it too, and shares the cache decoded here
step "decode the data once" 120 "$PY" -c "from cifarnets.data import sources; sources.load(verbose=True)"

wanted pytest && step "pytest -m cuda" 180 "$PY" -m pytest -m cuda -p no:cacheprovider -q -rs tests/test_cuda.py \
  --junitxml="$OUT/pytest-cuda.xml"

# small: the bench's loop is the same for every network, so the CNN alone shows it runs
if [ "$SMALL" = 1 ]; then SIZE=(--model cnn --steps 3 --cold-starts 1); EPOCHS=(--epochs 1); else SIZE=(); EPOCHS=(); fi
wanted bench && step "bench" 120 "$PY" -m cifarnets bench --device "$DEVICE" --json "${SIZE[@]}" > "$OUT/bench.json"
wanted report && step "speedrun to the report's accuracy" 120 "$PY" -m cifarnets speedrun --device "$DEVICE" --model all \
  --recipe fast --target report --json "${EPOCHS[@]}" > "$OUT/speedrun-report.json"

# The floors, one network at a time while the floor budget lasts: a network cut off is named, not lost.
FLOOR_END=$((SECONDS + FLOOR_S))
wanted floor && for key in cnn resnet densenet se_resnet; do
  cap=$((FLOOR_END - SECONDS))
  if [ "$cap" -lt 10 ]; then say "floor $key: not run, the ${FLOOR_S}s for the floors are spent"; continue; fi
  TIMEOUT_OK=1 step "speedrun $key to its floor" "$((cap / SCALE))" "$PY" -m cifarnets speedrun --device "$DEVICE" --model "$key" \
    --recipe fast --target floor --json "${EPOCHS[@]}" > "$WORK/floor-$key.json"
done
if wanted floor; then
  "$PY" - "$WORK" "$OUT/speedrun-floor.json" <<'EOF'
import json, pathlib, sys
found = {}
for key in ("cnn", "resnet", "densenet", "se_resnet"):
    try:
        found[key] = json.loads(pathlib.Path(sys.argv[1], f"floor-{key}.json").read_text())
    except (OSError, ValueError):
        found[key] = None  # not run, or cut off: the log has its epochs
first = next((r for r in found.values() if r), {})
merged = {k: first.get(k) for k in ("machine", "precision", "target", "data")}
merged["results"] = {k: r["results"][k] for k, r in found.items() if r}
merged["not_finished"] = [k for k, r in found.items() if not r]
pathlib.Path(sys.argv[2]).write_text(json.dumps(merged, indent=2))
EOF
fi

rm -rf "$WORK"
say "done in $((SECONDS - START))s; files in $OUT:"; ls -l "$OUT"
if [ ${#FAILED[@]} -gt 0 ]; then say "FAILED: ${FAILED[*]}"; exit 1; fi
say "every step passed"
