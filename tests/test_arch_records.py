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
