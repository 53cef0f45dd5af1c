#!/usr/bin/env bash
# Run ON THE GPU MACHINE, from the repository root: servecheck's GPU detection on the real card.
#   bash benchmarks/gpu_truth/detect.sh        # writes $OUT/detect.json and $OUT/detect.txt
# Installs servecheck from the working tree with pip (no deps: rich and regex are in the
# image; nvidia-ml-py too), then runs `servecheck gpus --detect` when that command exists, else
# servecheck.hardware.detect.detect_gpus() through python -c.
set -uo pipefail
SC=/tmp/servecheck-site
rm -rf "$SC" build src/*.egg-info
python3 -m pip install -q --no-index --no-deps --no-build-isolation --no-compile --target "$SC" . \
  || echo "pip install failed; using PYTHONPATH=src" >&2
export PYTHONPATH=$SC:$PWD/src
out=${OUT:-/tmp}
if python3 -m servecheck.cli gpus --help >/dev/null 2>&1; then
  python3 -m servecheck.cli gpus --detect --format json > "$out/detect.json" 2>&1
  COLUMNS=120 python3 -m servecheck.cli gpus --detect --format text > "$out/detect.txt" 2>&1
  echo "servecheck gpus --detect: rc $?"
else
  echo "no 'servecheck gpus' command yet: calling detect_gpus()" | tee "$out/detect.txt"
  python3 - >"$out/detect.json" 2>>"$out/detect.txt" <<'PY'
import json
from dataclasses import asdict
from servecheck.hardware.detect import detect_gpus
print(json.dumps(asdict(detect_gpus()), indent=1, default=str))
PY
fi
nvidia-smi --query-gpu=name,memory.total,compute_cap,driver_version --format=csv >> "$out/detect.txt"
cat "$out/detect.json" "$out/detect.txt"
