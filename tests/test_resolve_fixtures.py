"""Every module of every llm-compressor fixture resolves to the scheme vLLM 0.33 would pick."""

from __future__ import annotations

import json

import pytest

from conftest import FIXTURES
from servecheck.api import Target, check
from servecheck.model.inventory import EMBEDDING, EXPERTS, LM_HEAD, NORM, ROUTER

MANIFEST = json.loads((FIXTURES / "MANIFEST.json").read_text())["checkpoints"]
# llm-compressor preset -> the compressed-tensors scheme class vLLM builds for its Linears,
# and the fused-MoE method class for its experts.
EXPECTED = {
    "FP8_DYNAMIC": ("W8A8Fp8", "CompressedTensorsW8A8Fp8MoEMethod"),
    "FP8": ("W8A8Fp8", "CompressedTensorsW8A8Fp8MoEMethod"),
    "FP8_BLOCK": ("W8A8Fp8", "CompressedTensorsW8A8Fp8MoEMethod"),
    "W8A8": ("W8A8Int8", "CompressedTensorsW8A8Int8MoEMethod"),
    "W4A16": ("WNA16", "CompressedTensorsWNA16MoEMethod"),
    "NVFP4A16": ("W4A4Fp4", "CompressedTensorsW4A4Nvfp4MoEMethod"),
    "NVFP4": ("W4A4Fp4", "CompressedTensorsW4A4Nvfp4MoEMethod"),
    "MXFP4A16": ("W4A4Mxfp4", "CompressedTensorsW4A4Mxfp4MoEMethod"),
    "MXFP4": ("W4A4Mxfp4", "CompressedTensorsW4A4Mxfp4MoEMethod"),
    "bf16": (None, "UnquantizedFusedMoEMethod"),
}


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_every_module_resolves_as_vllm(name):
    entry = MANIFEST[name]
    scheme, moe = EXPECTED[entry["scheme"]]
    report = check(FIXTURES / name)
    assert report.verdict == "ok", [f.message for f in report.findings]
    assert [f.code for f in report.findings] == []
    for r in report.resolution.resolutions:
        m = r.module
        if m.kind in (NORM, EMBEDDING) or m.kind == "attn.kv_cache":
            assert r.scheme is None, m.name
        elif m.kind == LM_HEAD:
            assert r.scheme is None and (r.ignored or scheme is None), m.name
        elif m.kind == ROUTER:
            # GLM builds its gate without quant_config; Qwen3-MoE's is ignored by the config.
            assert r.scheme is None, m.name
        elif m.kind == EXPERTS:
            assert r.scheme == scheme and r.method == moe, m.name
        elif m.mtp and m.kind == "mtp.eh_proj":
            assert r.scheme is None
        else:
            assert r.scheme == scheme, (m.name, r.scheme)
            if scheme:
                assert r.method == "CompressedTensorsLinearMethod"
                assert r.target == "Linear" and r.match_via == "class"


def test_router_handling_differs_by_architecture():
    glm = check(FIXTURES / "glm4moe-FP8_DYNAMIC").resolution.by_name()
    gate = glm["model.layers.1.mlp.gate"]
    assert not gate.module.receives_quant_config and not gate.ignored
    qwen = check(FIXTURES / "qwen3moe-FP8_DYNAMIC").resolution.by_name()
    gate = next(r for n, r in qwen.items() if n.endswith("mlp.gate"))
    # Qwen3-MoE passes quant_config to GateLinear: only the ignore list keeps it unquantized.
    assert gate.module.receives_quant_config and gate.ignored


def test_fp8_below_ada_resolves_to_weight_only_marlin_scheme():
    report = check(FIXTURES / "llama-FP8_DYNAMIC", target=Target("A100", "gpu", capability=80))
    schemes = {r.scheme for r in report.resolution.resolutions if r.scheme}
    assert schemes == {"W8A16Fp8"}
    # vLLM loads it, but logs that FP8 runs weight-only through Marlin: a warning (H003).
    assert [f.code for f in report.findings if f.severity.value != "info"] == ["H003"]
    assert report.verdict == "warn"


def test_scheme_capability_error():
    report = check(FIXTURES / "llama-MXFP4", target=Target("T4", "gpu", capability=75))
    codes = [f.code for f in report.findings]
    assert "R010" in codes
    f = next(f for f in report.findings if f.code == "R010")
    assert "Min capability: 80. Current capability: 75." in f.vllm_message
    assert report.verdict == "fail"


def test_config_only_input_is_marked_inferred():
    report = check(FIXTURES / "llama-FP8_DYNAMIC" / "config.json")
    assert report.checkpoint.config_only
    assert [f.code for f in report.findings] == ["K015"]
    stored = check(FIXTURES / "llama-FP8_DYNAMIC")
    # Inferred sizes agree with the headers for everything the scheme fixes (per-tensor input
    # scales aside, which have no fixed shape).
    for name, nbytes in stored.module_bytes.items():
        assert report.module_bytes.get(name, 0) == pytest.approx(nbytes, abs=16), name
