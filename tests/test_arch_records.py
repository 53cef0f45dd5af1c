"""Architecture records on full-size configs (Llama 4, vision-language towers, sparse-attention
indexers, non-gated and fused experts): the modules vLLM builds, their sizes, and the cache
each layer keeps."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from servecheck.api import check
from servecheck.model.arch import build_inventory
from servecheck.model.config import parse_config
from servecheck.plan.kv_cache import kv_spec
from servecheck.plan.layouts import Layout

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "benchmarks" / "gpu_truth" / "configs"
SCOUT = CONFIGS / "llama-4-scout-17b-16e-instruct-fp8-dynamic"


def scout_config() -> dict:
    return json.loads((SCOUT / "config.json").read_text())


def inventory(config: dict, tensors=None):
    cfg = parse_config(config)
    return cfg, build_inventory(cfg, tensors, None)


def maverick_config() -> dict:
    """Llama 4 Maverick's text model: 128 experts on every other layer, bf16."""
    config = scout_config()
    del config["quantization_config"]
    config["text_config"].update(
        num_local_experts=128,
        interleave_moe_layer_step=2,
        moe_layers=list(range(1, 48, 2)),
        use_qk_norm=False,
        max_position_embeddings=1048576,
    )
    return config


def test_llama4_layers_chunked_with_nope_every_fourth():
    cfg, inv = inventory(scout_config())
    kinds = [c.kind for c in inv.cache_layers]
    assert kinds[:4] == ["chunked", "chunked", "chunked", "full"]
    assert kinds.count("full") == 12
    assert {c.window for c in inv.cache_layers if c.kind == "chunked"} == {8192}
    # chunked local attention turns vLLM's hybrid allocator off: every layer is full
    spec = kv_spec(cfg, inv, Layout(tp=1), "bfloat16", 16)
    assert {s.kind for s in spec.stages[0]} == {"full"}
    assert spec.bytes_per_token(0) == 48 * 8 * 2 * 128 * 2


def test_llama4_moe_block_shared_expert_and_router():
    _, inv = inventory(scout_config())
    by = inv.by_name()
    p = "language_model.model.layers.0.feed_forward"
    router = by[f"{p}.router"]
    assert not router.receives_quant_config and router.out_features == 16
    assert by[f"{p}.shared_expert.gate_up_proj"].out_features == 2 * 8192
    experts = by[f"{p}.experts"].experts
    assert (experts.num_experts, experts.hidden_size, experts.intermediate_size) == (16, 5120, 8192)
    # a quantized release stores one tensor set per expert
    assert experts.fused_layout is None
    # q/k norm without weights: no module
    assert "language_model.model.layers.0.self_attn.q_norm" not in by


def test_llama4_maverick_interleaves_dense_layers_of_intermediate_size_mlp():
    _, inv = inventory(maverick_config())
    by = inv.by_name()
    dense = by["language_model.model.layers.0.feed_forward.gate_up_proj"]
    assert dense.out_features == 2 * 16384
    assert "language_model.model.layers.0.feed_forward.experts" not in by
    experts = by["language_model.model.layers.1.feed_forward.experts"].experts
    assert experts.num_experts == 128
    # the original bf16 release stores the experts fused: [E, H, 2I] and [E, I, H]
    assert experts.fused_layout == "gate_up_3d"


def test_llama4_fused_or_per_expert_follows_the_checkpoint():
    from servecheck.source.safetensors import TensorInfo

    config = maverick_config()
    name = "language_model.model.layers.1.feed_forward.experts.0.gate_proj.weight"
    per_expert = {name: TensorInfo(name, "BF16", (8192, 5120), 8192 * 5120 * 2, "a")}
    _, inv = inventory(config, per_expert)
    experts = inv.by_name()["language_model.model.layers.1.feed_forward.experts"].experts
    assert experts.fused_layout is None


def test_llama4_vision_tower_is_never_quantized():
    report = check(SCOUT, vllm_version="0.24.0")
    assert report.inventory.derivation == "exact"
    towers = [m for m in report.inventory.modules if m.kind.startswith("tower.")]
    names = {m.name for m in towers}
    assert "vision_model.model.layers.33.self_attn.qkv_proj" in names
    assert "vision_model.vision_adapter.mlp.fc2" in names
    assert "multi_modal_projector.linear_1" in names
    assert not any(m.receives_quant_config for m in towers)
    res = report.resolution.by_name()
    assert res["vision_model.model.layers.0.mlp.fc1"].scheme is None
    assert res["language_model.model.layers.0.feed_forward.experts"].scheme == "W8A8Fp8"
    assert res["language_model.model.layers.0.self_attn.qkv_proj"].scheme is None
    # vision parameters: 34 layers of attention (4 x 1408^2) and MLP (2 x 1408 x 5632), the
    # patch embedding, class token, positions and norms, the adapter and the projector
    params = 0
    for m in towers:
        params += m.in_features * m.out_features + (m.out_features if m.bias else 0)
        params += sum(_prod(p.shape) for p in m.params)
    expected_layer = 4 * (1408 * 1408 + 1408) + 1408 * 5632 + 5632 + 5632 * 1408 + 1408 + 4 * 1408
    expected = (
        34 * expected_layer
        + 3 * 14 * 14 * 1408
        + 1408
        + 577 * 1408
        + 4 * 1408
        + 5632 * 4096
        + 4096 * 4096
        + 4096 * 5120
    )
    assert params == expected


def _prod(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def test_llama4_text_only_checkpoint_class():
    config = copy.deepcopy(scout_config()["text_config"])
    config["architectures"] = ["Llama4ForCausalLM"]
    _, inv = inventory(config)
    names = {m.name for m in inv.modules}
    assert "model.layers.47.feed_forward.experts" in names
    assert not any(n.startswith("vision_model") for n in names)


def names_of(folder: str) -> tuple[set[str], object]:
    report = check(CONFIGS / folder, vllm_version="0.33.0")
    assert report.inventory.derivation == "exact"
    assert not [f.code for f in report.findings if f.severity.value == "error"]
    return {m.name for m in report.inventory.modules}, report.inventory


def test_qwen3_vl_tower_deepstack_mergers_and_qwen3_language_model():
    names, inv = names_of("qwen3-vl-8b-instruct")
    assert "visual.pos_embed" in names and "visual.blocks.26.mlp.linear_fc2" in names
    assert {"visual.deepstack_merger_list.2.linear_fc1", "visual.merger.norm"} <= names
    assert "language_model.model.layers.35.self_attn.q_norm" in names
    by = inv.by_name()
    # deepstack mergers normalise the merged patches (1152 x 2 x 2), the main merger each patch
    assert by["visual.deepstack_merger_list.0.norm"].params[0].shape == (4608,)
    assert by["visual.merger.norm"].params[0].shape == (1152,)
    assert by["visual.merger.linear_fc2"].out_features == 4096
    assert inv.vllm_name("model.language_model.layers.0.mlp.up_proj.weight") == (
        "language_model.model.layers.0.mlp.up_proj.weight"
    )


def test_qwen3_vl_moe_experts_fused_in_the_release():
    _, inv = names_of("qwen3-vl-30b-a3b-instruct")
    experts = inv.by_name()["language_model.model.layers.0.mlp.experts"].experts
    assert (experts.num_experts, experts.intermediate_size) == (128, 768)
    assert experts.fused_layout == "gate_up_3d"
    assert inv.by_name()["language_model.model.layers.0.mlp.gate"].receives_quant_config


def test_mistral3_pixtral_tower_and_projector():
    names, inv = names_of("mistral-small-3.1-24b-instruct")
    assert "vision_tower.transformer.layers.23.feed_forward.gate_up_proj" in names
    merging = inv.by_name()["multi_modal_projector.patch_merger.merging_layer"]
    # a plain torch Linear: never quantized
    assert merging.layer_class == "Linear" and not merging.receives_quant_config
    assert merging.in_features == 1024 * 4
    assert inv.by_name()["multi_modal_projector.linear_2"].out_features == 5120
    assert inv.vllm_name("model.vision_tower.ln_pre.weight") == "vision_tower.ln_pre.weight"


def test_mistral3_tower_stops_at_the_feature_layer():
    config = json.loads((CONFIGS / "mistral-small-3.1-24b-instruct" / "config.json").read_text())
    config["vision_feature_layer"] = -2
    _, inv = inventory(config)
    names = {m.name for m in inv.modules}
    assert "vision_tower.transformer.layers.22.attention.qkv_proj" in names
    assert "vision_tower.transformer.layers.23.attention.qkv_proj" not in names


def test_glm45v_moe_language_model_and_tower():
    names, inv = names_of("glm-4.5v")
    by = inv.by_name()
    assert "language_model.model.layers.0.mlp.gate_up_proj" in names  # first_k_dense_replace
    router = by["language_model.model.layers.1.mlp.gate"]
    assert router.weight_dtype == "F32" and not router.receives_quant_config
    assert by["language_model.model.layers.1.mlp.shared_experts.down_proj"].in_features == 1408
    qkv = by["language_model.model.layers.1.self_attn.qkv_proj"]
    assert qkv.bias and qkv.out_features == (96 + 2 * 8) * 128
    # the vision blocks' MLP is out_hidden_size wide; the merger's is intermediate_size
    assert by["visual.blocks.0.mlp.gate_up_proj"].out_features == 2 * 4096
    assert by["visual.merger.gate_up_proj"].out_features == 2 * 10944
    assert inv.loader.skip_layers_from == 46


REAL = Path("/work/shared/real_configs")


def v32_config(**over) -> dict:
    config = {
        "architectures": ["DeepseekV32ForCausalLM"],
        "model_type": "deepseek_v32",
        "hidden_size": 256,
        "intermediate_size": 512,
        "moe_intermediate_size": 128,
        "num_hidden_layers": 4,
        "num_attention_heads": 4,
        "num_key_value_heads": 4,
        "n_routed_experts": 4,
        "n_shared_experts": 1,
        "num_experts_per_tok": 2,
        "first_k_dense_replace": 1,
        "q_lora_rank": 128,
        "kv_lora_rank": 64,
        "qk_nope_head_dim": 32,
        "qk_rope_head_dim": 16,
        "v_head_dim": 32,
        "index_head_dim": 128,
        "index_n_heads": 8,
        "index_topk": 64,
        "topk_method": "noaux_tc",
        "vocab_size": 1024,
        "num_nextn_predict_layers": 1,
        "torch_dtype": "bfloat16",
    }
    config.update(over)
    return config


def test_deepseek_v32_indexer_modules_and_key_cache():
    cfg, inv = inventory(v32_config())
    assert inv.derivation == "exact"
    by = inv.by_name()
    p = "model.layers.1.self_attn.indexer"
    assert by[f"{p}.wq_b"].in_features == 128 and by[f"{p}.wq_b"].out_features == 8 * 128
    wk = by[f"{p}.wk_weights_proj"]
    assert not wk.receives_quant_config and [s.out_features for s in wk.shards] == [128, 8]
    assert {q.dtype for q in by[f"{p}.k_norm"].params} == {"F32"}
    # MTP layer 4 has its own indexer
    assert by["model.layers.4.self_attn.indexer.wq_b"].mtp
    # per layer and token: the latent (64 + 16) x 2 bytes and 128 FP8 keys + 1 fp32 scale
    spec = kv_spec(cfg, inv, Layout(tp=1), "bfloat16", 64)
    assert spec.bytes_per_token(0) == 4 * ((64 + 16) * 2 + 132)
    fp8 = kv_spec(cfg, inv, Layout(tp=1), "fp8", 64)
    assert fp8.bytes_per_token(0) == 4 * (656 + 132)


def test_deepseek_v32_index_topk_freq_skips_indexers():
    _, inv = inventory(v32_config(num_hidden_layers=6, index_topk_freq=2))
    with_indexer = sorted({m.layer for m in inv.modules if ".indexer." in m.name})
    # vLLM 0.24+: max(i - 2 + 1, 0) % 2 != 0 skips; MTP layer 6 always builds one
    assert with_indexer == [0, 1, 3, 5, 6]
    assert sum(c.kind == "indexer" for c in inv.cache_layers if not c.mtp) == 4


def test_deepseek_v32_fp8_wk_is_accepted(tmp_path):
    from fixtures.broken import write_safetensors
    from servecheck.checks.expected import module_tensors

    (tmp_path / "config.json").write_text(json.dumps(v32_config()))
    report = check(tmp_path, vllm_version="0.33.0")
    by_res = report.resolution.by_name()
    tensors = {}
    for m in report.inventory.modules:
        for exp in module_tensors(m, by_res[m.name]):
            if exp.shape is None:
                continue
            n = 1
            for d in exp.shape:
                n *= d
            dtype = "F32" if exp.dtypes == frozenset({"F32"}) else "BF16"
            tensors[exp.name] = (dtype, exp.shape, bytes(n * (4 if dtype == "F32" else 2)))
    for i in range(5):
        wk = f"model.layers.{i}.self_attn.indexer.wk"
        tensors[f"{wk}.weight"] = ("F8_E4M3", (128, 256), bytes(128 * 256))
        tensors[f"{wk}.weight_scale_inv"] = ("F32", (1, 2), bytes(8))
    write_safetensors(tmp_path / "model.safetensors", tensors)
    report = check(tmp_path, vllm_version="0.33.0")
    assert [f.code for f in report.findings if f.severity.value in ("error", "warning")] == []


def test_real_sparse_attention_configs_are_exact():
    for name in ("deepseek-ai__DeepSeek-V3.2", "zai-org__GLM-5-FP8"):
        if not (REAL / name).exists():
            continue
        report = check(REAL / name, vllm_version="0.33.0")
        assert report.inventory.derivation == "exact"
        assert "A004" not in [f.code for f in report.findings]
