"""The GPU-truth cases: what run_cases.py runs on the GPU machine, and how prepare.sh builds them.

Standard library only. Paths are relative to the repository root (the working directory of a
device call). Three kinds of case:

- ``fixture``: a committed tiny checkpoint from tests/fixtures/checkpoints, loaded and asked for a
  few tokens (the tokenizer is passed separately, as tests/fixtures/README.md says).
- ``broken``: a copy of a fixture with one defect, built here by tests/fixtures/broken.py or by a
  config edit below; vLLM is expected to reject most of them.
- ``dummy``: a config-only folder (benchmarks/gpu_truth/configs/ or examples/) loaded with
  ``load_format="dummy"`` (random weights of the real shapes) to measure full-size memory.

Built folders go to ``STAGE_CASES`` (git-ignored) and travel with the run call (``carry``).
"""

from __future__ import annotations

import json
import shutil
import struct
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
FIXTURES = "tests/fixtures/checkpoints"
TOKENIZER = "tests/fixtures/tokenizer"
STAGE_CASES = "benchmarks/gpu_truth/stage/cases"

# Tiny checkpoints: a small fixed KV reservation (kv_cache_memory_bytes) skips vLLM's memory
# profiling, so several tiny cases can share the GPU without disturbing each other's figures
# (vLLM 0.24 v1/worker/gpu_worker.py determine_available_memory: profiling reads the whole
# device's free memory and asserts no other process released any meanwhile).
TINY_LLM: dict[str, Any] = {
    "max_model_len": 256,
    "enforce_eager": True,
    "gpu_memory_utilization": 0.05,
    "kv_cache_memory_bytes": 256 * 2**20,
    "max_num_seqs": 16,
    "max_num_batched_tokens": 512,
    "seed": 0,
}

# Full-size dummy loads run alone on the GPU with vLLM's own memory profiling. The batch limits
# are `vllm serve`'s defaults on a >= 70 GiB GPU (vLLM 0.24 engine/arg_utils.py
# _get_default_max_num_batched_tokens_and_seqs: OPENAI_API_SERVER 8192 tokens, 1024 seqs), set
# explicitly because the LLM class would otherwise use 16384 tokens.
DUMMY_LLM: dict[str, Any] = {
    "load_format": "dummy",
    "enforce_eager": True,
    "max_num_batched_tokens": 8192,
    "max_num_seqs": 1024,
    "seed": 0,
}


def _fixture(
    name: str, priority: int, note: str = "", case: str | None = None, **llm: Any
) -> dict[str, Any]:
    return {
        "name": case or name,
        "kind": "fixture",
        "group": "tiny",
        "model": f"{FIXTURES}/{name}",
        "tokenizer": TOKENIZER,
        "llm": {**TINY_LLM, **llm},
        "generate": True,
        "priority": priority,
        "note": note,
    }


def _broken(
    name: str, source: str, builder: str, priority: int, note: str, **kw: Any
) -> dict[str, Any]:
    return {
        "name": name,
        "kind": "broken",
        "group": "tiny",
        "model": f"{STAGE_CASES}/{name}",
        "tokenizer": TOKENIZER,
        "source": f"{FIXTURES}/{source}",
        "build": {"builder": builder, **kw},
        "llm": dict(TINY_LLM),
        "generate": True,
        "priority": priority,
        "note": note,
    }


def _dummy(
    name: str,
    config: str,
    priority: int,
    max_model_len: int,
    util: float,
    note: str = "",
    min_gpu_gib: float | None = None,
    **llm: Any,
) -> dict[str, Any]:
    folder = config.rstrip("/").split("/")[-1]
    return {
        "name": name,
        "kind": "dummy",
        "group": "full",
        "model": f"{STAGE_CASES}/config-{folder}",
        "tokenizer": None,
        "config_source": config,
        "llm": {
            **DUMMY_LLM,
            "max_model_len": max_model_len,
            "gpu_memory_utilization": util,
            **llm,
        },
        "generate": False,
        "priority": priority,
        "min_gpu_gib": min_gpu_gib,
        "note": note,
    }


CASES: list[dict[str, Any]] = [
    # ---- tiny fixtures, loaded and generating ----
    _fixture("llama-bf16", 1),
    _fixture("llama-FP8_DYNAMIC", 2),
    _fixture("llama-FP8_BLOCK", 3),
    _fixture("llama-W4A16", 4),
    _fixture("llama-W8A8", 5),
    _fixture("llama-NVFP4A16", 6),
    _fixture("llama-NVFP4", 7, "W4A4 NVFP4 below sm_100"),
    _fixture("llama-MXFP4", 8, "W4A4 MXFP4 below sm_100"),
    _fixture("llama-FP8", 9, "static per-tensor input scales"),
    _fixture("qwen3moe-bf16", 10),
    _fixture("qwen3moe-FP8_DYNAMIC", 11),
    _fixture("qwen3moe-FP8_BLOCK", 12),
    _fixture("qwen3moe-W4A16", 13),
    _fixture("qwen3moe-NVFP4", 14),
    _fixture("qwen3moe-W8A8", 15),
    _fixture("qwen3moe-MXFP4", 16),
    _fixture("glm4moe-bf16", 17),
    _fixture("glm4moe-FP8_DYNAMIC", 18),
    _fixture("glm4moe-FP8_BLOCK", 19),
    _fixture("glm4moe-NVFP4A16", 20),
    _fixture("glm4moe-W4A16", 21),
    _fixture("glm4moe-mtp-bf16", 22, "MTP layer present, no speculative decoding asked"),
    _fixture("qwen3moe-NVFP4A16", 23),
    _fixture("qwen3moe-FP8", 24),
    _fixture("llama-MXFP4A16", 25),
    _fixture("qwen3moe-MXFP4A16", 26),
    _fixture("glm4moe-MXFP4", 27),
    _fixture("glm4moe-W8A8", 28),
    _fixture(
        "llama-FP8_DYNAMIC",
        29,
        "FP8 KV cache",
        case="llama-FP8_DYNAMIC-kv-fp8",
        kv_cache_dtype="fp8",
    ),
    _fixture(
        "llama-bf16",
        30,
        "max_model_len 4096 above max_position_embeddings 1024",
        case="llama-bf16-len-above-model",
        max_model_len=4096,
    ),
    # ---- broken and edge-case checkpoints ----
    _broken(
        "glm4moe-fp8-router-gate",
        "glm4moe-FP8_DYNAMIC",
        "fp8_router_gate",
        1,
        "router mlp.gate stored F8_E4M3 + weight_scale, dropped from ignore (broken.py (b))",
    ),
    _broken(
        "llama-ignore-only-q-proj",
        "llama-FP8_DYNAMIC",
        "ignore_only_q_proj",
        2,
        "ignore names layer 0 q_proj alone: splits the fused qkv_proj (broken.py (e))",
    ),
    _broken(
        "llama-ignore-unanchored-mlp-gate",
        "llama-FP8_DYNAMIC",
        "add_ignore",
        3,
        "ignore 're:.*mlp.gate' matches gate_proj but not up_proj of the dense gate_up_proj",
        patterns=["re:.*mlp.gate"],
    ),
    _broken(
        "qwen3moe-ignore-unanchored-mlp-gate",
        "qwen3moe-FP8_DYNAMIC",
        "add_ignore",
        4,
        "router-ignore written unanchored; layer 0 is dense (mlp_only_layers [0]), so it also "
        "matches that layer's gate_proj",
        patterns=["re:.*mlp.gate"],
    ),
    _broken(
        "qwen3moe-ignore-anchored-mlp-gate",
        "qwen3moe-FP8_DYNAMIC",
        "add_ignore",
        5,
        "control for the case above: 're:.*mlp.gate$' matches routers only",
        patterns=["re:.*mlp.gate$"],
    ),
    _broken(
        "qwen3moe-mixed-expert-schemes",
        "qwen3moe-FP8_DYNAMIC",
        "add_ignore",
        6,
        "experts' down_proj ignored, gate/up quantized (config edit only)",
        patterns=["re:.*mlp.experts.*down_proj"],
    ),
    _broken(
        "glm4moe-mixed-expert-schemes",
        "glm4moe-FP8_DYNAMIC",
        "add_ignore",
        7,
        "experts' down_proj ignored, gate/up quantized (config edit only)",
        patterns=["re:.*mlp.experts.*down_proj"],
    ),
    _broken(
        "llama-missing-weight-scale",
        "llama-FP8_DYNAMIC",
        "missing_weight_scale",
        8,
        "layer 0 k_proj.weight_scale removed (broken.py (a))",
    ),
    _broken(
        "glm4moe-drop-last-layer",
        "glm4moe-FP8_DYNAMIC",
        "drop_last_layer",
        9,
        "last layer's tensors removed, config still says 2 layers (broken.py (c))",
    ),
    _broken(
        "llama-dequantized-module",
        "llama-FP8_DYNAMIC",
        "dequantized_module",
        10,
        "layer 0 q_proj stored BF16 without scale while the config quantizes it (broken.py (d))",
    ),
    _broken(
        "qwen3moe-missing-expert-scale",
        "qwen3moe-FP8_DYNAMIC",
        "missing_weight_scale",
        11,
        "expert 0 down_proj.weight_scale of the MoE layer removed",
        module="model.layers.1.mlp.experts.0.down_proj",
    ),
    _broken(
        "llama-truncated-header",
        "llama-bf16",
        "truncated_header",
        12,
        "model.safetensors shorter than its declared header (broken.py (f))",
    ),
    _broken(
        "llama-index-missing-shard",
        "llama-bf16",
        "index_missing_shard",
        13,
        "index names a second shard that is absent (broken.py (g))",
    ),
    _broken(
        "llama-index-bad-weight-map",
        "llama-bf16",
        "index_bad_weight_map",
        14,
        "weight_map wrong three ways, all shard files present (broken.py (g))",
    ),
    _broken(
        "llama-unexpected-tensor",
        "llama-bf16",
        "extra_tensor",
        15,
        "an extra tensor model.layers.0.mlp.extra_proj.weight no module of the model owns",
        tensor="model.layers.0.mlp.extra_proj.weight",
    ),
    # ---- full-size configs, load_format="dummy" ----
    _dummy(
        "dummy-llama-3.1-8b-len8k-u090", "benchmarks/gpu_truth/configs/llama-3.1-8b", 1, 8192, 0.90
    ),
    _dummy(
        "dummy-qwen3-30b-a3b-fp8-len8k-u090",
        "benchmarks/gpu_truth/configs/qwen3-30b-a3b-fp8",
        2,
        8192,
        0.90,
    ),
    _dummy(
        "dummy-gpt-oss-20b-len8k-u090", "benchmarks/gpu_truth/configs/gpt-oss-20b", 3, 8192, 0.90
    ),
    _dummy(
        "dummy-qwen3-30b-a3b-bf16-len4k-u090",
        "benchmarks/gpu_truth/configs/qwen3-30b-a3b",
        4,
        4096,
        0.90,
    ),
    _dummy(
        "dummy-glm-4.5-air-fp8-len8k-u095",
        "examples/glm-4.5-air-derestricted-fp8",
        5,
        8192,
        0.95,
        "about 100 GiB of weights: does not fit an 80 GB card",
    ),
    _dummy(
        "dummy-llama-3.1-8b-len32k-u050",
        "benchmarks/gpu_truth/configs/llama-3.1-8b",
        6,
        32768,
        0.50,
    ),
    _dummy(
        "dummy-qwen3-30b-a3b-fp8-len32k-u060",
        "benchmarks/gpu_truth/configs/qwen3-30b-a3b-fp8",
        7,
        32768,
        0.60,
    ),
    _dummy(
        "dummy-gpt-oss-20b-len128k-u050",
        "benchmarks/gpu_truth/configs/gpt-oss-20b",
        8,
        131072,
        0.50,
    ),
    _dummy(
        "dummy-qwen3-30b-a3b-bf16-len32k-u095",
        "benchmarks/gpu_truth/configs/qwen3-30b-a3b",
        9,
        32768,
        0.95,
    ),
    _dummy(
        "dummy-llama-3.1-8b-len8k-u090-graphs",
        "benchmarks/gpu_truth/configs/llama-3.1-8b",
        10,
        8192,
        0.90,
        "CUDA graphs on (enforce_eager False)",
        enforce_eager=False,
    ),
    _dummy(
        "dummy-llama-3.1-8b-len8k-u090-seqs256-tok2048",
        "benchmarks/gpu_truth/configs/llama-3.1-8b",
        11,
        8192,
        0.90,
        "smaller batch limits: activation peak and sampler profile shrink",
        max_num_seqs=256,
        max_num_batched_tokens=2048,
    ),
    _dummy(
        "dummy-mixtral-8x7b-len4k-u090",
        "benchmarks/gpu_truth/configs/mixtral-8x7b",
        12,
        4096,
        0.90,
        "about 87 GiB of bf16 weights",
        min_gpu_gib=100,
    ),
    _dummy(
        "dummy-glm-4.5-air-fp8-len32k-u095",
        "examples/glm-4.5-air-derestricted-fp8",
        13,
        32768,
        0.95,
        min_gpu_gib=100,
    ),
    _dummy(
        "dummy-mixtral-8x7b-len32k-u095",
        "benchmarks/gpu_truth/configs/mixtral-8x7b",
        14,
        32768,
        0.95,
        min_gpu_gib=100,
    ),
    _dummy(
        "dummy-qwen3-30b-a3b-fp8-len8k-u090-graphs",
        "benchmarks/gpu_truth/configs/qwen3-30b-a3b-fp8",
        15,
        8192,
        0.90,
        "CUDA graphs on; Qwen3-MoE runs on the V1 model runner in 0.24",
        enforce_eager=False,
    ),
    _dummy(
        "dummy-llama-3.1-8b-len8k-u090-kvfp8",
        "benchmarks/gpu_truth/configs/llama-3.1-8b",
        16,
        8192,
        0.90,
        "kv_cache_dtype fp8",
        kv_cache_dtype="fp8",
    ),
    _dummy(
        "dummy-glm-4.5-air-fp8-len8k-u075",
        "examples/glm-4.5-air-derestricted-fp8",
        17,
        8192,
        0.75,
        "budget leaves about 0.4 GiB for KV",
        min_gpu_gib=100,
    ),
    _dummy(
        "dummy-llama-3.1-8b-len128k-u020",
        "benchmarks/gpu_truth/configs/llama-3.1-8b",
        18,
        131072,
        0.20,
        "KV budget below one 131072-token request",
    ),
    _dummy(
        "dummy-mixtral-8x7b-len4k-u060",
        "benchmarks/gpu_truth/configs/mixtral-8x7b",
        19,
        4096,
        0.60,
        "weights above the requested budget",
        min_gpu_gib=100,
    ),
    _dummy(
        "dummy-llama-3.1-8b-len128k-u040",
        "benchmarks/gpu_truth/configs/llama-3.1-8b",
        20,
        131072,
        0.40,
        "KV memory positive but below one 131072-token request on an 80 GB card",
    ),
]


# ---- architectures (issue 11): one H200, vLLM 0.24, dummy weights at full size ----
# Multimodal configs run text-only (limit_mm_per_prompt 0 for every modality): vLLM then
# builds no vision tower and needs no processor files.
TEXT_ONLY = {"limit_mm_per_prompt": {"image": 0, "video": 0}}


def _arch(name: str, config: str, priority: int, max_model_len: int, note: str, **llm: Any):
    case = _dummy(
        name, f"benchmarks/gpu_truth/configs/{config}", priority, max_model_len, 0.90, note, **llm
    )
    case["group"] = "arch"
    return case


CASES += [
    _arch(
        "dummy-gemma-2-9b-len8k-u090", "gemma-2-9b-it", 1, 8192, "sliding window on half the layers"
    ),
    _arch(
        "dummy-nemotron-h-8b-len8k-u090",
        "nemotron-h-8b-base-8k",
        2,
        8192,
        "hybrid Mamba-2: attention block aligned to the state page (1040 tokens predicted)",
    ),
    _arch(
        "dummy-qwen3-next-80b-fp8-len32k-u090",
        "qwen3-next-80b-a3b-instruct-fp8",
        3,
        32768,
        "gated delta net (linear attention) + 512-expert MoE, FP8 block weights",
    ),
    _arch(
        "dummy-gemma-3-12b-textonly-len32k-u090",
        "gemma-3-12b-it",
        4,
        32768,
        "vision-language, text only: no vision tower is built",
        **TEXT_ONLY,
    ),
    _arch(
        "dummy-qwen2.5-vl-7b-textonly-len32k-u090",
        "qwen2.5-vl-7b-instruct",
        5,
        32768,
        "vision-language, text only: no vision tower is built",
        **TEXT_ONLY,
    ),
    _arch("dummy-exaone-4.0-32b-len32k-u090", "exaone-4.0-32b", 6, 32768, "3:1 sliding/full, long"),
    _arch("dummy-granite-4.0-h-tiny-len32k-u090", "granite-4.0-h-tiny", 7, 32768, "Mamba-2 + MoE"),
    _arch("dummy-falcon-h1-7b-len32k-u090", "falcon-h1-7b-instruct", 8, 32768, "parallel hybrid"),
    _arch("dummy-qwen1.5-moe-a2.7b-len8k-u090", "qwen1.5-moe-a2.7b-chat", 9, 8192, "Qwen2-MoE"),
    _arch(
        "dummy-phi-3.5-mini-len32k-u090", "phi-3.5-mini-instruct", 10, 32768, "fused qkv/gate_up"
    ),
    _arch("dummy-cohere2-7b-len8k-u090", "c4ai-command-r7b-12-2024", 11, 8192, "Cohere 2 sliding"),
    _arch(
        "dummy-gemma-3-1b-len32k-u090", "gemma-3-1b-it", 12, 32768, "5:1 sliding/full, 1 KV head"
    ),
    _arch(
        "dummy-olmo-2-7b-len4k-u090", "olmo-2-1124-7b-instruct", 13, 4096, "OLMo 2 (native in 0.24)"
    ),
    _arch("dummy-smollm3-3b-len32k-u090", "smollm3-3b", 14, 32768, "Transformers backend"),
    # Llama 4 Scout: 109B parameters do not fit one 141 GB H200 in bf16 (218 GB), so the
    # compressed-tensors FP8-dynamic release (experts and shared expert FP8, attention, router,
    # vision tower and projector kept bf16: about 107 GiB); text only, because the vision
    # encoder's profiling needs the image processor files a config-only folder lacks
    _arch(
        "dummy-llama-4-scout-fp8-textonly-len32k-u090",
        "llama-4-scout-17b-16e-instruct-fp8-dynamic",
        15,
        32768,
        "Llama 4: chunked local attention (hybrid allocator off: all layers full), NoPE "
        "every 4th layer, MoE with a shared expert, FP8 experts; 10M-position rotary cache",
        **TEXT_ONLY,
    ),
    _arch(
        "dummy-llama-4-scout-fp8-textonly-len128k-u090",
        "llama-4-scout-17b-16e-instruct-fp8-dynamic",
        16,
        131072,
        "Llama 4 at long context: one 131072-token request needs more KV than is left "
        "(about 72k tokens predicted)",
        **TEXT_ONLY,
    ),
    _arch(
        "dummy-qwen3-vl-30b-a3b-textonly-len32k-u090",
        "qwen3-vl-30b-a3b-instruct",
        17,
        32768,
        "Qwen3-VL MoE (experts fused in the release), text only",
        **TEXT_ONLY,
    ),
    _arch(
        "dummy-mistral-small-3.1-24b-textonly-len32k-u090",
        "mistral-small-3.1-24b-instruct",
        18,
        32768,
        "Mistral3 (Pixtral tower), text only",
        **TEXT_ONLY,
    ),
]


def by_name() -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in CASES}


# ---------------------------------------------------------------- building (run here) ----


def _add_ignore(src: Path, dst: Path, patterns: list[str]) -> Path:
    """Copy a checkpoint and append `patterns` to quantization_config.ignore (config edit only)."""
    shutil.copytree(src, dst)
    cfg_path = dst / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["quantization_config"]["ignore"] = [*cfg["quantization_config"]["ignore"], *patterns]
    cfg_path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    return dst


def _extra_tensor(src: Path, dst: Path, tensor: str) -> Path:
    """Copy a checkpoint and add one BF16 tensor [8, 8] that no module of the model owns."""
    from tests.fixtures import broken

    tensors, meta = broken._copy(src, dst)
    tensors[tensor] = ("BF16", [8, 8], bytes(128))
    broken.write_safetensors(dst / "model.safetensors", tensors, meta)
    return dst


def gptq_header_only(dst: Path, cfg: dict[str, Any]) -> Path | None:
    """A header-only model.safetensors naming each GPTQ-quantized linear weight (I32 qweight) of
    a config-only GPTQ folder, so that vLLM finds the quantized layers as it would in the
    published checkpoint: 0.24 AutoGPTQConfig.maybe_update_config (auto_gptq.py) takes
    modules_in_block_to_quantize from the safetensors headers when the config has none, and a
    folder without weight files leaves every linear layer unquantized. load_format="dummy" reads
    no tensor data; the header is read as vLLM's parse_safetensors_file_metadata does."""
    q = cfg.get("quantization_config") or {}
    if q.get("quant_method") != "gptq" or q.get("modules_in_block_to_quantize"):
        return None
    projs = [f"self_attn.{p}_proj" for p in "qkvo"]
    experts = int(cfg.get("num_experts") or cfg.get("num_local_experts") or 0)
    header: dict[str, Any] = {}
    for i in range(int(cfg["num_hidden_layers"])):
        mlp = (
            [f"mlp.experts.{e}.{p}_proj" for e in range(experts) for p in ("gate", "up", "down")]
            if experts and i not in (cfg.get("mlp_only_layers") or [])
            else [f"mlp.{p}_proj" for p in ("gate", "up", "down")]
        )
        for m in projs + mlp:
            header[f"model.layers.{i}.{m}.qweight"] = {
                "dtype": "I32",
                "shape": [1, 1],
                "data_offsets": [0, 0],
            }
    raw = json.dumps(header, separators=(",", ":")).encode()
    path = dst / "model.safetensors"
    path.write_bytes(struct.pack("<Q", len(raw)) + raw)
    return path


def build(out: Path | None = None) -> list[str]:
    """Build every broken and config-only case folder under STAGE_CASES (fresh)."""
    sys.path.insert(0, str(ROOT))
    from tests.fixtures import broken  # stdlib-only builders

    out = ROOT / STAGE_CASES if out is None else out
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    built = []
    for case in CASES:
        if case["kind"] == "broken":
            dst = out / Path(case["model"]).name
            src = ROOT / case["source"]
            spec = dict(case["build"])
            builder = spec.pop("builder")
            if builder == "add_ignore":
                _add_ignore(src, dst, spec["patterns"])
            elif builder == "extra_tensor":
                _extra_tensor(src, dst, spec["tensor"])
            else:
                getattr(broken, builder)(src, dst, **spec)
            built.append(case["name"])
        elif case["kind"] == "dummy":
            dst = out / Path(case["model"]).name
            if not dst.exists():
                dst.mkdir(parents=True)
                shutil.copy(ROOT / case["config_source"] / "config.json", dst / "config.json")
                hf_quant = ROOT / case["config_source"] / "hf_quant_config.json"
                if hf_quant.exists():  # ModelOpt's legacy quantization config beside config.json
                    shutil.copy(hf_quant, dst / hf_quant.name)
                gptq_header_only(dst, json.loads((dst / "config.json").read_text()))
                # any small tokenizer works to start the engine (no text is generated)
                for f in (ROOT / TOKENIZER).iterdir():
                    shutil.copy(f, dst / f.name)
                built.append(dst.name)
    (out / "cases.json").write_text(json.dumps(CASES, indent=1) + "\n")
    return built


# ---- quantization formats of issue 12 (dense and MoE), full size with dummy weights ----
# GPTQ / AWQ / ModelOpt configs composed from the public model configs above with each tool's
# published quantization_config / hf_quant_config.json layout; "fp8 at load time" runs the
# unquantized Llama config with quantization="fp8". Each records the method, kernels and MoE
# backends vLLM 0.24 picks on the H200 (tests/test_gpu_truth.py holds the predictions to them).
QUANT_CFG = "benchmarks/gpu_truth/configs"
CASES += [
    _dummy(f"dummy-{name}-len4k-u090", f"{QUANT_CFG}/{name}", 40 + i, 4096, 0.90, note)
    for i, (name, note) in enumerate(
        [
            ("llama-3.1-8b-gptq", "GPTQ int4 g128: Machete on sm_90"),
            ("llama-3.1-8b-gptq-actorder", "GPTQ desc_act=True g128 (allowed in 0.24)"),
            ("llama-3.1-8b-awq", "AWQ int4 g128 zero point"),
            ("qwen3-30b-a3b-gptq", "GPTQ MoE: AutoGPTQMoEMethod backend"),
            ("qwen3-30b-a3b-awq", "AWQ MoE: AutoAWQMoEMethod backend"),
            ("llama-3.1-8b-modelopt-fp8", "ModelOpt FP8 per-tensor (hf_quant_config.json)"),
            ("llama-3.1-8b-modelopt-fp8-pcpt", "ModelOpt FP8_PER_CHANNEL_PER_TOKEN"),
            ("llama-3.1-8b-modelopt-nvfp4", "ModelOpt NVFP4 + FP8 KV: Marlin W4A16 on sm_90"),
            ("qwen3-30b-a3b-modelopt-fp8", "ModelOpt FP8 MoE: ModelOptFp8MoEMethod backend"),
            ("qwen3-30b-a3b-modelopt-nvfp4", "ModelOpt NVFP4 MoE on sm_90 (Marlin)"),
        ]
    )
] + [
    _dummy(
        "dummy-llama-3.1-8b-fp8-online-len4k-u090",
        "benchmarks/gpu_truth/configs/llama-3.1-8b",
        50,
        4096,
        0.90,
        "FP8 applied at load time: quantization='fp8' on the bf16 config",
        quantization="fp8",
    ),
]


# after every CASES += above: built as a script, the folders of all of them
if __name__ == "__main__":
    names = build()
    print(f"built {len(names)} folders under {STAGE_CASES}")
