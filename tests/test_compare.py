"""servecheck compare: families, key differences, ignore lists compared by coverage."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from clirun import invoke
from conftest import EXAMPLES
from fixtures import broken
from servecheck.api import compare

GLM45 = EXAMPLES / "glm-4.5-fp8"
AIR = EXAMPLES / "glm-4.5-air-derestricted-fp8"


def with_ignore(name: str, dst: Path, entries: list[str]) -> Path:
    shutil.copytree(broken.fixture(name), dst)
    cfg = json.loads((dst / "config.json").read_text())
    cfg["quantization_config"]["ignore"] = entries
    (dst / "config.json").write_text(json.dumps(cfg, indent=2))
    return dst


def row(c, key):
    return next(r for r in c.rows if r.key == key)


def test_examples_are_different_families():
    c = compare(GLM45, AIR)
    assert c.relation == "different-family" and c.different_models
    assert "GLM-4.5 vs GLM-4.5-Air" in c.statement
    # The seed's "Key Differences" table, generated.
    expected = {
        "hidden_size": ("5120", "4096"),
        "intermediate_size": ("12288", "10944"),
        "moe_intermediate_size": ("1536", "1408"),
        "num_hidden_layers": ("92", "46"),
        "n_routed_experts": ("160", "128"),
        "routed_scaling_factor": ("2.5", "1.0"),
        "first_k_dense_replace": ("3", "1"),
        "use_qk_norm": ("true", "false"),
        "dtype key": ("torch_dtype: bfloat16", "dtype: bfloat16"),
        "ignore list size": ("838 entries", "1 entry"),
    }
    for key, (a, b) in expected.items():
        r = row(c, key)
        assert (r.a, r.b) == (a, b) and r.differs, key
    assert "vLLM reads either" in row(c, "dtype key").note
    assert not row(c, "num_attention_heads").differs
    assert not row(c, "quant method").differs
    # Same schemes, different module counts: not a difference.
    assert not row(c, "schemes: moe.experts").differs


def test_examples_ignore_lists_cover_the_same_modules():
    # 838 entries vs 1: vLLM skips exactly lm_head in both, and neither changes a resolution.
    ign = compare(GLM45, AIR).ignore
    assert not ign.by_name  # different models: compared layer-independently
    assert ign.a.covered == ign.b.covered == frozenset({"lm_head"})
    assert ign.same_coverage and ign.same_effect
    assert ign.a.effect == ign.b.effect == frozenset()
    assert ign.a.entries == 838 and ign.a.unconsulted_entries == 837


def test_textually_different_lists_with_same_coverage_compare_equal(tmp_path):
    a = with_ignore("qwen3moe-FP8_DYNAMIC", tmp_path / "a", ["model.layers.1.mlp.gate", "lm_head"])
    b = with_ignore(
        "qwen3moe-FP8_DYNAMIC",
        tmp_path / "b",
        [r"re:.*mlp\.gate$", "re:^lm_head$", "model.norm", "model.layers.0.input_layernorm"],
    )
    c = compare(a, b)
    assert c.relation == "same-model"
    ign = c.ignore
    assert ign.by_name
    assert ign.a.covered == ign.b.covered == frozenset({"model.layers.1.mlp.gate", "lm_head"})
    assert ign.same_coverage and ign.same_effect
    assert ign.b.unconsulted_entries == 2
    assert "same modules" in c.ignore_statement


def test_different_coverage_is_reported_by_module(tmp_path):
    a = with_ignore("qwen3moe-FP8_DYNAMIC", tmp_path / "a", ["lm_head"])
    b = with_ignore("qwen3moe-FP8_DYNAMIC", tmp_path / "b", ["model.layers.1.mlp.gate", "lm_head"])
    ign = compare(a, b).ignore
    assert not ign.same_coverage and not ign.same_effect
    assert ign.only_a == () and ign.only_b == ("model.layers.1.mlp.gate",)
    # Without the entry the router resolves W8A8Fp8; B's entry changes that resolution.
    assert ign.effect_only_b == ("model.layers.1.mlp.gate",)


def test_same_family_and_different_architectures(fixture_path):
    same = compare(AIR, AIR)
    assert same.relation == "same-family" and not same.different_models
    assert "GLM-4.5-Air" in same.statement
    other = compare(fixture_path("llama-FP8_DYNAMIC"), fixture_path("qwen3moe-FP8_DYNAMIC"))
    assert other.relation == "different-architecture"
    assert "LlamaForCausalLM" in other.statement and "Qwen3MoeForCausalLM" in other.statement


def test_cli_formats():
    result = invoke(["compare", str(GLM45), str(AIR)])
    assert result.exit_code == 0, result.output
    assert "GLM-4.5 vs GLM-4.5-Air" in " ".join(result.output.split())
    result = invoke(["compare", str(GLM45), str(AIR), "--format", "json"])
    data = json.loads(result.stdout)
    assert data["relation"] == "different-family" and data["different_models"]
    assert data["a"]["family"] == "GLM-4.5" and data["b"]["family"] == "GLM-4.5-Air"
    assert data["ignore"]["same_coverage"] is True
    assert data["ignore"]["a"]["covered"] == ["lm_head"]
    result = invoke(["compare", str(GLM45), str(AIR), "--format", "markdown"])
    assert "## Key Differences" in result.stdout
    assert "| `num_hidden_layers` | 92 | **46** |" in result.stdout
    result = invoke(["compare", str(GLM45), "/nonexistent"])
    assert result.exit_code == 2
