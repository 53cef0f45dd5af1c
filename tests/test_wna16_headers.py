"""GPTQ / AWQ layers read from the safetensors headers (vLLM's maybe_update_config).

The checkpoint here is written tensor by tensor in the AutoGPTQ / AutoAWQ layouts with a
config that does not list its quantized layers: only the MLP is quantized, attention is
stored in float16. vLLM (0.11+ for GPTQ, 0.11.1+ for AWQ) derives the lists from the headers.
"""

from __future__ import annotations

import json

from fixtures.broken import write_safetensors
from servecheck.api import check
from test_preflight import LLAMA, gpu

SMALL = {**LLAMA, "hidden_size": 256, "intermediate_size": 512, "num_attention_heads": 4,
         "num_key_value_heads": 2, "num_hidden_layers": 1, "vocab_size": 512,
         "torch_dtype": "float16"}  # fmt: skip
GROUP = 128


def _t(dtype: str, shape: list[int]):
    size = {"F16": 2, "I32": 4}[dtype]
    n = 1
    for d in shape:
        n *= d
    return (dtype, shape, bytes(n * size))


def _gptq(out_f: int, in_f: int) -> dict:
    return {
        "qweight": _t("I32", [in_f // 8, out_f]),
        "qzeros": _t("I32", [in_f // GROUP, out_f // 8]),
        "scales": _t("F16", [in_f // GROUP, out_f]),
        "g_idx": _t("I32", [in_f]),
    }


def build(tmp_path, quant: dict):
    h, i, kv = 256, 512, 2 * 64
    tensors = {
        "model.embed_tokens.weight": _t("F16", [512, h]),
        "model.norm.weight": _t("F16", [h]),
        "lm_head.weight": _t("F16", [512, h]),
    }
    p = "model.layers.0."
    tensors[p + "input_layernorm.weight"] = _t("F16", [h])
    tensors[p + "post_attention_layernorm.weight"] = _t("F16", [h])
    for name, out_f in (("q_proj", h), ("k_proj", kv), ("v_proj", kv), ("o_proj", h)):
        tensors[f"{p}self_attn.{name}.weight"] = _t("F16", [out_f, h])
    for name, out_f, in_f in (("gate_proj", i, h), ("up_proj", i, h), ("down_proj", h, i)):
        for suffix, t in _gptq(out_f, in_f).items():
            tensors[f"{p}mlp.{name}.{suffix}"] = t
    write_safetensors(tmp_path / "model.safetensors", tensors)
    (tmp_path / "config.json").write_text(json.dumps({**SMALL, "quantization_config": quant}))
    return tmp_path


def methods(report):
    return {r.module.kind: r.method for r in report.resolution.resolutions}


def test_gptq_quantized_layers_from_headers(tmp_path):
    gptq = {"quant_method": "gptq", "bits": 4, "group_size": GROUP, "desc_act": False,
            "sym": True}  # fmt: skip
    report = check(build(tmp_path, gptq), target=gpu("A100"))
    got = methods(report)
    assert got["mlp.down_proj"] == "AutoGPTQLinearMethod"
    assert got["attn.qkv_proj"] == "UnquantizedLinearMethod"  # float16 in the headers
    assert got["attn.o_proj"] == "UnquantizedLinearMethod"
    # vLLM 0.10 did not read the headers: every linear is GPTQ there
    old = check(tmp_path, vllm_version="0.10.2", target=gpu("A100"))
    assert methods(old)["attn.o_proj"] != "UnquantizedLinearMethod"


def test_config_list_wins_over_headers(tmp_path):
    gptq = {
        "quant_method": "gptq",
        "bits": 4,
        "group_size": GROUP,
        "desc_act": False,
        "sym": True,
        "modules_in_block_to_quantize": [["self_attn.o_proj"], ["mlp.down_proj"]],
    }
    report = check(build(tmp_path, gptq), target=gpu("A100"))
    got = methods(report)
    assert got["attn.o_proj"] == "AutoGPTQLinearMethod"
    assert got["mlp.gate_up_proj"] == "UnquantizedLinearMethod"
