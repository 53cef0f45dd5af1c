"""gpt-oss attention sinks: the backend vLLM picks per GPU and release (hardware/attention.py)."""

from __future__ import annotations

import pytest

from servecheck.api import check
from test_preflight import gpu


@pytest.fixture
def gpt_oss(tmp_path):
    import json

    from conftest import ROOT

    cfg = json.loads((ROOT / "benchmarks/gpu_truth/configs/gpt-oss-20b/config.json").read_text())
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    return path


@pytest.mark.parametrize(
    ("name", "version", "backend"),
    [
        ("A100", "0.33.0", "TRITON_ATTN"),  # FA2 has no sinks (FA3/FA4 only)
        ("L40S", "0.33.0", "TRITON_ATTN"),
        ("H100", "0.33.0", "FLASH_ATTN"),  # FA3
        ("B200", "0.33.0", "FLASHINFER"),
        ("RTX 5090", "0.33.0", "FLASHINFER"),  # TRT-LLM XQA decode on sm_12x from 0.33
        ("RTX 5090", "0.24.0", "TRITON_ATTN"),  # 0.24: FlashInfer sinks on sm_10x only
        ("A100", "0.11.0", "TRITON_ATTN"),  # 0.11 rule: sinks off sm_90 use Triton
    ],
)
def test_sinks_pick_a_backend_that_has_them(gpt_oss, name, version, backend):
    report = check(gpt_oss, vllm_version=version, target=gpu(name))
    att = report.kernels.attention
    assert att.backend == backend
    if backend == "TRITON_ATTN" and version != "0.11.0":
        rejected = {s.candidate: s.reason for s in att.steps if not s.ok}
        assert "attention sinks not supported" in (rejected.get("FLASH_ATTN") or "")
