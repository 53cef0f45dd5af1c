"""vLLM's registry per release, architecture support findings, and inventories of configs
servecheck has no exact record for (derived from config.json conventions)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from servecheck.api import check, plan_model
from servecheck.model.registry import known_releases, lookup, supported_count
from servecheck.model.support import resolve_architecture

ROOT = Path(__file__).resolve().parents[1]
# the published configs beside the repository (shared/real_configs), when present
REAL_CONFIGS = next(
    (
        p
        for p in (ROOT.parent / "shared" / "real_configs", Path("/work/shared/real_configs"))
        if p.exists()
    ),
    ROOT / "missing",
)


def codes(report) -> list[str]:
    return [f.code for f in report.findings]


def write_config(tmp_path: Path, config: dict) -> Path:
    (tmp_path / "config.json").write_text(json.dumps(config))
    return tmp_path


def test_registry_covers_every_release_from_0_10():
    releases = known_releases()
    assert releases[0] == "0.10.0" and "0.24.0" in releases and "0.33.0" in releases
    # vLLM serves a few hundred architecture names in every release
    assert all(supported_count(r) > 150 for r in releases)
    assert supported_count("0.33.0") > supported_count("0.10.0")


def test_architecture_added_later_says_from_which_release():
    found = lookup("Qwen3NextForCausalLM", "0.10.0")
    assert not found.supported and found.later is not None
    assert found.later.first == "0.10.2"
    assert lookup("Qwen3NextForCausalLM", "0.24.0").span.module == "qwen3_next"


def test_class_serving_an_architecture_changes_by_release():
    assert lookup("Olmo2ForCausalLM", "0.24.0").span.cls == "Olmo2ForCausalLM"
    newer = lookup("Olmo2ForCausalLM", "0.33.0").span
    assert newer.transformers_backend and newer.cls == "TransformersForCausalLM"


def test_suffix_normalisation_finds_the_registered_base():
    # vLLM 0.33 registry.py _normalize_arch swaps a known suffix for another
    found = resolve_architecture(["Qwen2ForRewardModelX", "LlamaForCausalLM"], "0.33.0")
    assert found.supported and found.span.cls == "LlamaForCausalLM"


def test_unknown_architecture_is_vllms_error(tmp_path):
    cfg = {
        "architectures": ["FooBarForCausalLM"],
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "vocab_size": 128,
    }
    report = check(write_config(tmp_path, cfg), vllm_version="0.33.0")
    finding = next(f for f in report.findings if f.code == "A001")
    assert finding.exception == "ValueError"
    assert finding.vllm_message.startswith(
        "Model architectures ['FooBarForCausalLM'] are not supported for now."
    )


def test_removed_architecture_quotes_the_last_release(tmp_path):
    cfg = {
        "architectures": ["MiniMaxText01ForCausalLM"],
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "vocab_size": 128,
    }
    report = check(write_config(tmp_path, cfg), vllm_version="0.33.0")
    finding = next(f for f in report.findings if f.code == "A002")
    assert "supported in vLLM until v0.23.0" in finding.vllm_message
    assert "A002" not in codes(check(tmp_path, vllm_version="0.20.0"))


def test_architecture_newer_than_the_release(tmp_path):
    cfg = {
        "architectures": ["Qwen3NextForCausalLM"],
        "model_type": "qwen3_next",
        "hidden_size": 64,
        "num_hidden_layers": 4,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "vocab_size": 128,
    }
    report = check(write_config(tmp_path, cfg), vllm_version="0.10.1")
    finding = next(f for f in report.findings if f.code == "A001")
    assert "0.10.2" in finding.message and "0.10.2" in finding.fix


def test_registered_architecture_without_record_is_approximate_not_bad_input(tmp_path):
    cfg = {
        "architectures": ["ApertusForCausalLM"],
        "model_type": "apertus",
        "hidden_size": 256,
        "intermediate_size": 512,
        "num_hidden_layers": 3,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "vocab_size": 1024,
    }
    report = check(write_config(tmp_path, cfg), vllm_version="0.33.0")
    assert "A004" in codes(report) and report.verdict != "ok"
    assert report.inventory.derivation == "config"
    names = {m.name for m in report.inventory.modules}
    assert "model.layers.2.self_attn.qkv_proj" in names
    assert "model.layers.2.mlp.down_proj" in names


def test_moe_config_without_record_gets_experts(tmp_path):
    cfg = {
        "architectures": ["AfmoeForCausalLM"],
        "hidden_size": 256,
        "intermediate_size": 512,
        "moe_intermediate_size": 128,
        "num_experts": 8,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "vocab_size": 1024,
    }
    report = check(write_config(tmp_path, cfg), vllm_version="0.33.0")
    experts = [m for m in report.inventory.modules if m.experts is not None]
    assert len(experts) == 2 and experts[0].experts.num_experts == 8


REAL = sorted(p for p in REAL_CONFIGS.glob("*/config.json")) if REAL_CONFIGS.exists() else []


@pytest.mark.parametrize("path", REAL, ids=[p.parent.name for p in REAL])
def test_every_real_config_checks_and_plans(path):
    report = check(path)
    assert report.inventory.modules
    plan = plan_model(path, gpu="H200", gpus=8)
    assert plan.layouts
