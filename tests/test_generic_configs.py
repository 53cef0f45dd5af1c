"""Any valid config checks and plans without exit 2, whatever its architecture: every
architecture in vLLM's registry (knowledge/vllm_registry.toml), as minimal configs of the shapes
real configs take (attention heads or none, sizes nested in text_config, transformers 5's
layer-type lists without num_hidden_layers). An inventory not modelled exactly is never a
plain OK; an architecture a release does not serve yet says from which release it works."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from servecheck.api import check, plan_model
from servecheck.knowledge import load_toml
from servecheck.model.registry import known_releases, lookup
from servecheck.model.support import resolve_architecture

NEWEST = known_releases()[-1]
REGISTRY = load_toml("vllm_registry.toml")["arch"]
SERVED = sorted(n for n in REGISTRY if lookup(n, NEWEST).supported)

VARIANTS = {
    # a decoder's usual keys
    "flat": lambda a: {
        "architectures": [a],
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "vocab_size": 128,
    },
    # no attention heads or MLP width (a Mamba-only config, or one relying on defaults)
    "sizes-left-out": lambda a: {
        "architectures": [a],
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "vocab_size": 128,
    },
    # a multimodal config: the language model's sizes under text_config
    "nested": lambda a: {
        "architectures": [a],
        "text_config": {
            "hidden_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "vocab_size": 128,
        },
        "vision_config": {"hidden_size": 32},
    },
    # transformers 5 style: the layer count is the layer-type list's length
    "layer-types": lambda a: {
        "architectures": [a],
        "hidden_size": 64,
        "layer_types": ["sliding_attention", "full_attention"],
        "sliding_window": 16,
        "num_attention_heads": 4,
        "vocab_size": 128,
    },
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_served_architecture_checks_and_plans(variant: str, tmp_path: Path) -> None:
    assert len(SERVED) > 300
    plain_ok = []
    for arch in SERVED:
        (tmp_path / "config.json").write_text(json.dumps(VARIANTS[variant](arch)))
        report = check(tmp_path, vllm_version=NEWEST)  # raises on exit-2 input errors
        codes = {f.code for f in report.findings}
        if report.verdict == "ok" and (report.inventory.approximate or "A007" in codes):
            plain_ok.append(arch)
        plan = plan_model(tmp_path, gpu="H200", gpus=1, vllm_version=NEWEST)
        assert plan.layouts, arch
    assert not plain_ok, f"approximate inventories reported OK: {plain_ok[:10]}"


def test_unrecorded_architectures_are_approximate(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps(VARIANTS["flat"]("ApertusForCausalLM")))
    report = check(tmp_path, vllm_version=NEWEST)
    assert report.inventory.derivation == "config"
    assert "A004" in {f.code for f in report.findings}


def test_missing_sizes_are_a_warning_not_an_ok(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(
        json.dumps(VARIANTS["sizes-left-out"]("LlamaForCausalLM"))
    )
    report = check(tmp_path, vllm_version=NEWEST)
    finding = next(f for f in report.findings if f.code == "A007")
    assert "num_attention_heads" in finding.message and "intermediate_size" in finding.message
    assert report.verdict == "warn"


def test_each_architecture_before_its_first_release_says_from_which(tmp_path: Path) -> None:
    releases = known_releases()
    checked = 0
    for arch, spans in REGISTRY.items():
        first = spans[0][0]
        if first == releases[0] or not isinstance(first, str):
            continue
        before = releases[releases.index(first) - 1]
        if resolve_architecture([arch], before).supported:
            continue  # served under another name's entry (suffix normalisation)
        (tmp_path / "config.json").write_text(json.dumps(VARIANTS["flat"](arch)))
        report = check(tmp_path, vllm_version=before)
        finding = next(f for f in report.findings if f.code == "A001")
        assert first in finding.message and first in finding.fix, (arch, finding.message)
        assert finding.vllm_message.startswith(f"Model architectures ['{arch}'] are not supported")
        checked += 1
    assert checked > 100
