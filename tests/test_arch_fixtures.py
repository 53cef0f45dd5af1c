"""Checks on the layout fixtures tests/fixtures/make_arch.py wrote with transformers and
llm-compressor: sliding-window (Gemma 3), hybrid Mamba-2 (Nemotron-H), linear attention
(Qwen3-Next) and a quantized vision-language model (Qwen2.5-VL FP8_DYNAMIC, tower ignored)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import FIXTURES
from servecheck.api import check, plan_model

LAYOUTS = {
    "gemma3-bf16": ["sliding", "full"],
    "nemotronh-bf16": ["mamba2", "full"],
    "qwen3next-bf16": ["gdn", "full"],
    "qwen25vl-FP8_DYNAMIC": ["full", "full"],
}


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_fixture_checks_clean_with_an_exact_inventory(name: str) -> None:
    report = check(FIXTURES / name, vllm_version="0.33.0")
    assert report.verdict == "ok", [(f.code, f.message) for f in report.findings]
    assert report.inventory.derivation == "exact"
    assert [c.kind for c in report.inventory.cache_layers] == LAYOUTS[name]
    # every stored tensor has its module: the audit found nothing missing or left over
    assert report.audit is not None and report.total_bytes > 0


def test_nemotron_h_saved_by_transformers_5_has_no_layer_count() -> None:
    # transformers 5 saves layers_block_type (linear_attention / full_attention / mlp) instead
    # of hybrid_override_pattern and num_hidden_layers; the checkpoint stores backbone.*
    config = json.loads((FIXTURES / "nemotronh-bf16" / "config.json").read_text())
    assert "num_hidden_layers" not in config and "hybrid_override_pattern" not in config
    report = check(FIXTURES / "nemotronh-bf16", vllm_version="0.33.0")
    assert report.model.num_layers == 3
    by = report.inventory.by_name()
    assert "model.layers.0.mixer.in_proj" in by and "model.layers.2.mixer.up_proj" in by
    assert report.inventory.vllm_name("backbone.embeddings.weight") == "model.embed_tokens.weight"


def test_vl_tower_stays_unquantized_and_language_model_fp8() -> None:
    report = check(FIXTURES / "qwen25vl-FP8_DYNAMIC", vllm_version="0.33.0")
    res = report.resolution.by_name()
    tower = [r for n, r in res.items() if n.startswith("visual.") and r.module.is_linear]
    assert tower and all(r.scheme is None for r in tower)
    assert res["language_model.model.layers.0.self_attn.qkv_proj"].scheme == "W8A8Fp8"


def test_vl_without_the_tower_in_the_ignore_list_fails(tmp_path: Path) -> None:
    # the same checkpoint with a config claiming the tower is quantized: its BF16 weights do
    # not match what vLLM would build
    folder = tmp_path / "vl"
    shutil.copytree(FIXTURES / "qwen25vl-FP8_DYNAMIC", folder)
    config = json.loads((folder / "config.json").read_text())
    qc = config["quantization_config"]
    qc["ignore"] = [i for i in qc["ignore"] if "visual" not in i]
    (folder / "config.json").write_text(json.dumps(config))
    report = check(folder, vllm_version="0.33.0")
    assert report.verdict == "fail"
    flagged = {f.code for f in report.findings if f.severity.value == "error"}
    assert flagged


@pytest.mark.parametrize("name", ["nemotronh-bf16", "qwen3next-bf16"])
def test_hybrid_fixture_plans_with_state_layers(name: str) -> None:
    plan = plan_model(FIXTURES / name, gpu="H200", gpus=1)
    assert plan.layouts
