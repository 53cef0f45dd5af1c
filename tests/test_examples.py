"""The shipped example configs: the seed's two models, told apart correctly."""

from __future__ import annotations

from conftest import EXAMPLES
from servecheck.api import check


def test_air_derestricted_fp8():
    report = check(EXAMPLES / "glm-4.5-air-derestricted-fp8")
    assert report.family.name == "GLM-4.5-Air"
    assert report.quant.method == "compressed-tensors"
    assert [f.code for f in report.findings] == ["K015"]
    by_kind = {}
    for r in report.resolution.resolutions:
        by_kind.setdefault(r.module.kind, set()).add(r.scheme)
    assert by_kind["moe.experts"] == {"W8A8Fp8"}
    assert by_kind["moe.router"] == {None}  # GLM's GateLinear never gets the quant config
    assert by_kind["lm_head"] == {None}
    assert by_kind["embedding"] == {None}
    assert 100 * 2**30 < report.total_bytes < 115 * 2**30  # about 110 GB of FP8 weights


def test_seed_working_config_is_glm45_not_air():
    report = check(EXAMPLES / "glm-4.5-fp8")
    assert report.family.name == "GLM-4.5"
    assert report.model.num_layers == 92 and report.model.num_experts == 160
    r009 = next(f for f in report.findings if f.code == "R009")
    # Norms, biases and router gates in the ignore list change nothing: vLLM never quantizes them.
    assert r009.count > 700
    assert all(("norm" in s or "bias" in s or "gate" in s or "embed" in s) for s in r009.subjects)


def test_gpt_oss_config_only_is_modelled():
    from servecheck.api import check

    # gpt-oss-20b's public architecture facts, MXFP4 experts (tests/data/plan/README.md).
    report = check(EXAMPLES.parent / "tests" / "data" / "plan" / "gpt-oss-20b")
    assert report.family.name == "gpt-oss-20b"
    experts = [r for r in report.resolution.resolutions if r.module.kind == "moe.experts"]
    assert {r.method for r in experts} == {"GptOssMxfp4MoEMethod"}
    assert {r.scheme for r in report.resolution.resolutions if r.module.kind != "moe.experts"} == {
        None
    }
    # openai/gpt-oss-20b ships 13.76 GB of safetensors (12.8 GiB).
    assert 12.5 * 2**30 < report.total_bytes < 13.2 * 2**30
