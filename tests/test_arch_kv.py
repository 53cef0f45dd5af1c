"""Architecture records on full-size configs: exact inventories, layer kinds and the KV cache
per layer kind (sliding windows, recurrent state per sequence, hybrid block alignment)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from servecheck.api import check
from servecheck.model.arch import build_inventory
from servecheck.model.config import parse_config
from servecheck.plan.kv_cache import kv_spec, state_bytes
from servecheck.plan.layouts import Layout

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "benchmarks" / "gpu_truth" / "configs"


def _cases():
    spec = importlib.util.spec_from_file_location("cases", ROOT / "benchmarks/gpu_truth/cases.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return [c for c in module.CASES if c["group"] == "arch"]


ARCH_CASES = _cases()


def test_at_least_twelve_architecture_cases():
    archs = {
        json.loads((ROOT / c["config_source"] / "config.json").read_text())["architectures"][0]
        for c in ARCH_CASES
    }
    assert len(archs) >= 12


@pytest.mark.parametrize("case", ARCH_CASES, ids=[c["name"] for c in ARCH_CASES])
def test_case_config_is_modelled_exactly(case):
    report = check(ROOT / case["config_source"], vllm_version="0.24.0")
    assert report.inventory.derivation == "exact"
    assert not [f.code for f in report.findings if f.severity.value == "error"]


def kv_of(config: dict, tp: int = 1, block: int = 16):
    cfg = parse_config(config)
    inv = build_inventory(cfg, None, None)
    return cfg, inv, kv_spec(cfg, inv, Layout(tp=tp), "bfloat16", block)


def test_nemotron_h_56b_block_size_matches_vllm_0_24():
    # measured on an H200 with vLLM 0.24 (shared/research/gpu-vllm-recipe.md): 4,128-token
    # attention blocks, forced by the Mamba-2 state page (fp32 SSM state)
    config = json.loads((CONFIGS / "nemotron-h-8b-base-8k" / "config.json").read_text())
    config.update(
        hidden_size=8192,
        mamba_num_heads=256,
        mamba_head_dim=64,
        n_groups=8,
        ssm_state_size=256,
        num_key_value_heads=8,
        head_dim=128,
    )
    _, _, spec = kv_of(config)
    assert spec.block_size == 4128


def test_nemotron_h_state_is_per_sequence_and_padded_to_a_page():
    config = json.loads((CONFIGS / "nemotron-h-8b-base-8k" / "config.json").read_text())
    _, inv, spec = kv_of(config)
    mamba = [c for c in inv.cache_layers if c.kind == "mamba2"]
    attn = [c for c in inv.cache_layers if c.kind == "full"]
    assert len(mamba) == 24 and len(attn) == 4
    # conv (8192 + 2*8*128) x 3 bf16 + temporal 128 x 64 x 128 fp32
    assert state_bytes(mamba[0], 1, 2) == 10240 * 3 * 2 + 128 * 64 * 128 * 4
    assert spec.block_size == 1040
    states = [s for s in spec.stages[0] if s.kind == "state"]
    assert {s.state_bytes for s in states} == {1040 * 8 * 256 * 2}


def test_gemma2_alternates_sliding_and_full_layers():
    config = json.loads((CONFIGS / "gemma-2-9b-it" / "config.json").read_text())
    _, inv, spec = kv_of(config)
    kinds = [c.kind for c in inv.cache_layers]
    assert kinds[:4] == ["sliding", "full", "sliding", "full"]
    assert {s.sliding_window for s in spec.stages[0] if s.kind == "sliding"} == {4096}


def test_gemma3_pattern_from_sliding_window_pattern():
    config = json.loads((CONFIGS / "gemma-3-1b-it" / "config.json").read_text())
    _, inv, _ = kv_of(config)
    kinds = [c.kind for c in inv.cache_layers]
    assert kinds[:6] == ["sliding"] * 5 + ["full"]
    assert kinds.count("full") == 4


def test_qwen3_next_linear_attention_every_fourth_layer_full():
    config = json.loads((CONFIGS / "qwen3-next-80b-a3b-instruct-fp8" / "config.json").read_text())
    _, inv, spec = kv_of(config)
    kinds = [c.kind for c in inv.cache_layers]
    assert kinds[:4] == ["gdn", "gdn", "gdn", "full"]
    names = {m.name for m in inv.modules}
    assert "model.layers.0.linear_attn.in_proj_qkvz" in names
    assert "model.layers.3.self_attn.qkv_proj" in names
    # q projection doubled by the output gate: 16 heads x 256 x 2 + 2 x 2 x 256
    qkv = inv.by_name()["model.layers.3.self_attn.qkv_proj"]
    assert qkv.out_features == 16 * 256 * 2 + 2 * 2 * 256
    assert spec.block_size > 16


def test_chunked_local_attention_counts_as_full():
    config = {
        "architectures": ["FooForCausalLM"],
        "hidden_size": 256,
        "intermediate_size": 512,
        "num_hidden_layers": 4,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "vocab_size": 1024,
        "attention_chunk_size": 64,
        "layer_types": ["chunked_attention"] * 3 + ["full_attention"],
    }
    _, inv, spec = kv_of(config)
    assert [c.kind for c in inv.cache_layers] == ["chunked"] * 3 + ["full"]
    assert {s.kind for s in spec.stages[0]} == {"full"}


def test_vision_language_inventory_has_tower_and_language_model():
    report = check(CONFIGS / "qwen2.5-vl-7b-instruct", vllm_version="0.24.0")
    names = {m.name for m in report.inventory.modules}
    assert "language_model.model.layers.0.self_attn.qkv_proj" in names
    assert "visual.blocks.31.mlp.gate_up_proj" in names
    assert "visual.merger.mlp.2" in names
    assert report.inventory.vllm_name("model.visual.blocks.0.attn.qkv.weight") == (
        "visual.blocks.0.attn.qkv.weight"
    )
