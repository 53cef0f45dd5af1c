"""Target and ignore matching, as vLLM 0.33 and 0.24 do it."""

from __future__ import annotations

import pytest

from servecheck.quant.matching import (
    FusedShardMismatch,
    PatternSet,
    find_target,
    fp8_is_skipped,
    is_match,
    should_ignore,
)

PACKED = {"qkv_proj": ("q_proj", "k_proj", "v_proj"), "gate_up_proj": ("gate_proj", "up_proj")}


def test_regex_is_anchored_at_start_only():
    assert is_match("model.layers.0.mlp.gate_up_proj", "re:.*mlp.gate")
    assert not is_match("model.layers.0.mlp.gate_up_proj", "re:.*mlp\\.gate$")
    assert is_match("model.layers.0.mlp.gate", "re:.*mlp\\.gate$")
    assert not is_match("model.layers.0.mlp.gate", "re:mlp.gate")  # match, not search


def test_class_substring_is_case_insensitive():
    assert is_match("QKVParallelLinear", "Linear", check_contains=True)
    assert is_match("GateLinear", "linear", check_contains=True)
    assert not is_match("ParallelLMHead", "Linear", check_contains=True)


def test_fused_first_ignores_whole_layer_for_unanchored_gate_pattern():
    # vLLM 0.33: the pattern matches the fused name itself, so both shards are ignored.
    ignored, pats = should_ignore(
        "model.layers.0.mlp.gate_up_proj", PatternSet(["re:.*mlp.gate"]), PACKED, "fused_first"
    )
    assert ignored and pats == ["re:.*mlp.gate"]


def test_shard_mode_splits_gate_up_for_unanchored_gate_pattern():
    # vLLM 0.24: only the shards are tested; gate_proj matches, up_proj does not.
    with pytest.raises(FusedShardMismatch) as exc:
        should_ignore(
            "model.layers.0.mlp.gate_up_proj",
            PatternSet(["re:.*mlp.gate"]),
            PACKED,
            "shards_unless_listed",
        )
    assert exc.value.covered == ["gate_proj"]
    assert "Found a different quantization schemes" in exc.value.text


def test_partial_qkv_ignore_raises_with_033_text():
    with pytest.raises(FusedShardMismatch) as exc:
        should_ignore(
            "model.layers.3.self_attn.qkv_proj",
            PatternSet(["model.layers.3.self_attn.q_proj"]),
            PACKED,
            "fused_first",
        )
    assert exc.value.uncovered == ["k_proj", "v_proj"]
    assert exc.value.text.startswith("Found different quantization schemes for the shards of")


def test_all_shards_listed_is_ignored():
    names = [f"model.layers.3.self_attn.{s}_proj" for s in "qkv"]
    assert should_ignore(
        "model.layers.3.self_attn.qkv_proj", PatternSet(names), PACKED, "fused_first"
    )[0]


def test_find_target_orders():
    targets = ["Linear", "re:.*q_proj$"]
    # name first: the qkv fused name matches neither by name; 0.33 tries fused shards next.
    hit = find_target(
        "model.layers.0.self_attn.qkv_proj",
        "QKVParallelLinear",
        targets,
        PACKED,
        "name,fused,class",
    )
    assert hit is not None and hit.target == "Linear" and hit.via == "class"
    targets = ["re:.*_proj$", "Linear"]
    hit = find_target(
        "model.layers.0.self_attn.qkv_proj",
        "QKVParallelLinear",
        targets,
        PACKED,
        "name,fused,class",
    )
    assert hit.via == "regex"


def test_fused_target_returns_first_shard_target():
    targets = ["re:.*q_proj$", "re:.*attn.k_proj$", "re:.*attn.v_proj$"]
    hit = find_target("model.layers.0.self_attn.qkv_proj", "X", targets, PACKED, "name,fused,class")
    assert hit.target == "re:.*q_proj$" and hit.via == "fused"


def test_fp8_exact_matching():
    ignored = ["model.layers.0.mlp.gate_proj", "model.layers.0.mlp.up_proj"]
    assert fp8_is_skipped("model.layers.0.mlp.gate_up_proj", ignored, PACKED)
    with pytest.raises(FusedShardMismatch, match="Detected some but not all shards"):
        fp8_is_skipped("model.layers.0.mlp.gate_up_proj", ignored[:1], PACKED)
    assert fp8_is_skipped("model.layers.1.mlp.experts", ["model.layers.1.mlp.experts.0"], PACKED)
