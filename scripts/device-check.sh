#!/usr/bin/env bash
# The GPU check in one go (tools/device_check.py): CUDA tests, benchmark table (VGG16, 256 px,
# batch 1/64/256, fp32 and bf16, NCHW and NHWC, TFLOP/s against the chip's peak), the atlas time
# (configs/atlas.yaml with random VGG16 weights, export included) and a run on all visible GPUs.
# About 8 minutes at most; writes OUT/report.md and OUT/report.json after every stage, prints the
# report, exits 0 (also without a GPU, where it says so).
#
#   scripts/device-check.sh OUT
set -u
OUT=${1:?usage: scripts/device-check.sh OUT_FOLDER}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
# The project may not be installed there: run it from this tree.
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

missing() {
  "$PYTHON" - <<'PY'
import importlib.util
# import name -> pip name; pytest only for the CUDA tests (the other stages run without it)
needed = {"torch": "torch", "torchvision": "torchvision", "lightning": "lightning",
          "jsonargparse": "jsonargparse[signatures]", "tensorboard": "tensorboard", "PIL": "pillow",
          "typing_extensions": "typing-extensions", "pytest": "pytest"}
print(" ".join(pip for name, pip in needed.items() if importlib.util.find_spec(name) is None))
PY
}

absent=$(missing)
if [ -n "$absent" ]; then
  echo "missing: $absent; trying pip (works only where a package index is reachable)" >&2
  # only what is missing: never reinstall the machine's torch
  timeout 120 "$PYTHON" -m pip install -q $absent >"$OUT/pip.log" 2>&1
  absent=$(missing)
fi
if [ -n "$(echo "${absent/pytest/}" | tr -d ' ')" ]; then  # all but pytest are needed
  {
    echo "# Device check"
    echo
    echo "**Not run: Python packages missing: $absent** (pip could not install them; see pip.log)."
    echo "Install them (pip install -e '.[test]') and run scripts/device-check.sh again."
  } >"$OUT/report.md"
  printf '{"error": "missing packages: %s"}\n' "$absent" >"$OUT/report.json"
  cat "$OUT/report.md"
  exit 0
fi

# The check keeps its own time boxes (450 s); this is the backstop.
timeout -k 10 480 "$PYTHON" -m tools.device_check "$OUT"
status=$?
if [ "$status" -ne 0 ]; then
  printf '\n**The check itself ended with exit %s** (124: stopped at 480 s); the stages above are complete.\n' \
    "$status" >>"$OUT/report.md"
fi
echo
echo "=== $OUT/report.md ==="
cat "$OUT/report.md"
exit 0
