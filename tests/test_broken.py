"""Hand-made broken checkpoints (tests/fixtures/broken.py) produce the right findings."""

from __future__ import annotations

import pytest

from fixtures import broken
from servecheck.api import check
from servecheck.versions import resolve_version


def codes(report):
    return sorted({f.code for f in report.findings})


def test_missing_scale(tmp_path):
    path = broken.missing_weight_scale(broken.fixture("llama-FP8_DYNAMIC"), tmp_path / "c")
    report = check(path)
    assert codes(report) == ["K005"]
    assert report.verdict == "fail"
    assert report.findings[0].subjects[0].endswith(".weight_scale")


@pytest.mark.parametrize(
    "version, text",
    [
        ("0.33.0", "ValueError: There is no module or parameter named"),
        ("0.11.0", "KeyError: 'model.layers.1.mlp.gate.weight_scale'"),
    ],
)
def test_fp8_router_gate(tmp_path, version, text):
    path = broken.fp8_router_gate(broken.fixture("glm4moe-FP8_DYNAMIC"), tmp_path / "c")
    report = check(path, vllm_version=version)
    assert codes(report) == ["K012"]
    f = report.findings[0]
    assert f.vllm_message.startswith(text)
    assert f.subjects == ("model.layers.1.mlp.gate",)


def test_fewer_layers(tmp_path):
    path = broken.drop_last_layer(broken.fixture("glm4moe-FP8_DYNAMIC"), tmp_path / "c")
    report = check(path)
    assert codes(report) == ["K010"]
    assert "config says 2 decoder layers; the checkpoint stores 1" in report.findings[0].message


def test_dtype_contradicts_scheme(tmp_path):
    path = broken.dequantized_module(broken.fixture("llama-FP8_DYNAMIC"), tmp_path / "c")
    report = check(path)
    assert codes(report) == ["K008"]
    assert "1 module is stored as BF16 but resolves to W8A8Fp8" in report.findings[0].message


def test_ignore_only_q_proj_splits_fused_qkv(tmp_path):
    path = broken.ignore_only_q_proj(broken.fixture("llama-FP8_DYNAMIC"), tmp_path / "c")
    report = check(path)
    assert codes(report) == ["R001"]
    f = report.findings[0]
    assert f.vllm_message == (
        "Found different quantization schemes for the shards of "
        "model.layers.0.self_attn.qkv_proj. vLLM requires all to use the same scheme."
    )
    old = check(path, vllm_version="0.11.0").findings
    assert old[0].vllm_message.startswith("Found a different quantization schemes for ['q_proj'")


def test_truncated_header_is_one_clear_error(tmp_path):
    path = broken.truncated_header(broken.fixture("llama-bf16"), tmp_path / "c")
    report = check(path)
    assert codes(report) == ["K001"]
    assert "header is truncated" in report.findings[0].message


def test_index_missing_shard(tmp_path):
    path = broken.index_missing_shard(broken.fixture("llama-bf16"), tmp_path / "c")
    report = check(path)
    assert "K002" in codes(report)
    f = next(f for f in report.findings if f.code == "K002")
    assert f.vllm_message.startswith("Weight files referenced in index but missing")


def test_index_bad_weight_map(tmp_path):
    path, _ = broken.index_bad_weight_map(broken.fixture("llama-bf16"), tmp_path / "c")
    report = check(path)
    assert "K004" in codes(report)


def test_version_feature_table_is_complete():
    v = resolve_version("0.24.0")
    assert v.feature("ct_ignore_fused") == "shards_unless_listed"
    assert resolve_version("0.33.0").feature("ct_match_order") == "name,fused,class"
