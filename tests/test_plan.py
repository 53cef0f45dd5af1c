"""The memory and parallelism planner (servecheck.plan) and its done-when cases (issue 5)."""

from __future__ import annotations

import copy
import json
import math

import pytest

from clirun import invoke
from conftest import EXAMPLES, ROOT
from servecheck.api import Target, check, plan_model
from servecheck.hardware.gpus import find_gpu
from servecheck.plan import ServeOptions
from servecheck.plan.config import GIB, era_for, table
from servecheck.plan.kv_cache import kv_spec
from servecheck.plan.layouts import Layout, LayoutContext, check_layout, pp_partition
from servecheck.plan.planner import make_plan
from servecheck.plan.weights import pad_vocab, plan_weights
from servecheck.versions import resolve_version

GLM_AIR = EXAMPLES / "glm-4.5-air-derestricted-fp8"
DATA = ROOT / "tests" / "data" / "plan"
DEEPSEEK = DATA / "deepseek-v3-fp8"
LLAMA = DATA / "llama-3.1-8b"


def ctx_for(report) -> LayoutContext:
    return LayoutContext(
        cfg=report.model,
        inventory=report.inventory,
        resolution=report.resolution,
        quant=report.quant,
        version=report.version,
        capability=report.target.capability,
    )


def weights_for(report, layout: Layout, capability: int, **kwargs):
    """plan_weights for a checked report."""
    args = (report.model, report.inventory, report.resolution, dict(report.module_bytes))
    return plan_weights(*args, layout, capability=capability, **kwargs)


def codes(findings) -> set[str]:
    return {f.code for f in findings}


# ---------------------------------------------------------------------------------------------
# Done-when: GLM-4.5-Air FP8 on RTX PRO 6000 Blackwell


def test_glm_air_does_not_fit_one_rtx_pro_6000():
    plan = plan_model(GLM_AIR, gpu="RTX PRO 6000", gpus=1)
    assert not plan.fits and plan.command is None
    only = plan.layouts[0]
    assert only.layout.label == "TP1" and only.status == "weights"
    # ~101 GiB of weights without the MTP layer against a 95 GiB card
    assert 98 * GIB < only.weights_per_gpu < 106 * GIB
    assert only.weights_per_gpu > plan.cuda_total
    m001 = next(f for f in plan.findings if f.code == "M001")
    assert "GiB of weights per GPU" in m001.message
    assert "not enough GPU memory" in m001.vllm_message
    assert "M008" in codes(plan.findings)


def test_glm_air_fits_two_rtx_pro_6000_with_command():
    plan = plan_model(GLM_AIR, gpu="RTX PRO 6000", gpus=2)
    rec = plan.recommended
    assert plan.fits and rec is not None and rec.layout.label == "TP2"
    assert 48 * GIB < rec.weights_per_gpu < 53 * GIB
    # KV at 4 of 8 KV heads per GPU, 46 layers, bf16: 94,208 bytes per token
    assert rec.stages[0].kv_bytes_per_token == 46 * 4 * 2 * 128 * 2
    assert rec.kv_tokens > 131072 and rec.concurrency > 1
    assert plan.command.serve.startswith("vllm serve")
    assert "--tensor-parallel-size 2" in plan.command.serve
    assert "--distributed-executor-backend" not in plan.command.serve
    m005 = next(f for f in plan.findings if f.code == "M005")
    assert f"{rec.kv_tokens:,} tokens" in m005.message


def test_glm_air_expert_tp_sizes_block_vs_channel_fp8():
    plan = plan_model(GLM_AIR, gpu="RTX PRO 6000", gpus=2)
    rows = {r["tp"]: r for r in plan.moe_tp_table}
    assert rows[1]["intermediate_per_rank"] == 1408
    # compressed-tensors block FP8 (128): only TP 1 keeps whole blocks (1408 = 11 x 128)
    assert [tp for tp, r in rows.items() if r["block_fp8_compressed_tensors"]] == [1]
    # per-channel FP8 has no block: every TP size splits the 1408 columns
    assert all(r["per_channel_fp8"] for r in rows.values())
    # vLLM 0.33's plain fp8 refines the scales to 64 at TP 2, 32 at TP 4, and gives up at 8
    assert rows[2]["block_fp8_plain_refined_to"] == 64
    assert rows[4]["block_fp8_plain_refined_to"] == 32
    assert not rows[8]["block_fp8_plain"]


def _glm_air_block_fp8(tmp_path, version: str | None = None):
    cfg = json.loads((GLM_AIR / "config.json").read_text())
    group = cfg["quantization_config"]["config_groups"]["group_0"]
    group["weights"].update({"strategy": "block", "block_structure": [128, 128]})
    group["input_activations"].update({"strategy": "group", "group_size": 128})
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    target = Target("RTX PRO 6000", "gpu", 120, None, 2)
    return check(tmp_path, vllm_version=version, target=target)


def test_block_fp8_experts_reject_tp2_with_vllms_text(tmp_path):
    report = _glm_air_block_fp8(tmp_path)
    ctx = ctx_for(report)
    problems = check_layout(Layout(tp=2), ctx)
    p005 = next(f for f in problems if f.code == "P005")
    assert p005.vllm_message == (
        "The output_size of gate's and up's weight = 704 is not divisible by weight "
        "quantization block_n = 128."
    )
    # expert parallelism keeps the 1408-wide experts whole
    assert "P005" not in codes(check_layout(Layout(tp=2, ep=True), ctx))
    # the dense layer 0 (10944 = 85.5 x 128) fails block FP8 at every TP, as in vLLM
    p004 = next(f for f in problems if f.code == "P004")
    assert "block_n = 128" in p004.vllm_message
    plan = report.plan
    assert not any(p.valid for p in plan.layouts)
    assert "P014" in codes(plan.findings)


def test_plain_fp8_moe_refines_in_033_but_not_024(tmp_path):
    cfg = json.loads((GLM_AIR / "config.json").read_text())
    cfg["quantization_config"] = {
        "quant_method": "fp8",
        "activation_scheme": "dynamic",
        "weight_block_size": [128, 128],
        "ignored_layers": ["model.layers.0.mlp.gate_up_proj", "model.layers.0.mlp.down_proj"],
    }
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    for version, expected in (("0.33.0", "P006"), ("0.24.0", "P005")):
        report = check(tmp_path, vllm_version=version)
        ctx = ctx_for(report)
        found = codes(check_layout(Layout(tp=2), ctx))
        assert expected in found, (version, found)
    # below sm_89 the refined block has no FP8 MoE backend (Triton FP8 needs sm_89)
    report = check(tmp_path, vllm_version="0.33.0", target=Target("A100", "gpu", 80, None, 2))
    p005 = next(f for f in check_layout(Layout(tp=2), ctx_for(report)) if f.code == "P005")
    assert p005.vllm_message == "No FP8 MoE backend supports the deployment configuration."


# ---------------------------------------------------------------------------------------------
# Done-when: DeepSeek-V3 (FP8 block) on 8x H100 80GB and 8x H200


def test_deepseek_v3_does_not_fit_8x_h100():
    plan = plan_model(DEEPSEEK, gpu="H100", gpus=8)
    assert not plan.fits
    tp8 = next(p for p in plan.layouts if p.layout.label == "TP8")
    assert tp8.valid and tp8.status == "weights"
    # about 627 GiB of FP8 weights without the MTP layer: over 78 GiB on each of 8 GPUs
    assert 76 * GIB < tp8.weights_per_gpu < 82 * GIB
    assert {"M001", "M008"} <= codes(plan.findings)


def test_deepseek_v3_fits_8x_h200():
    plan = plan_model(DEEPSEEK, gpu="H200", gpus=8)
    rec = plan.recommended
    # data-parallel attention with expert parallelism: MLA's latent KV is the same on every TP
    # rank, so eight replicas hold several times the KV cache of TP8
    assert plan.fits and rec.layout.label == "DP8+EP"
    tp8 = next(p for p in plan.layouts if p.layout.label == "TP8")
    assert tp8.fits
    # MLA: one 576-wide latent per token and layer, the same on every TP rank
    assert tp8.stages[0].kv_bytes_per_token == 61 * (512 + 64) * 2
    assert rec.kv_tokens * 8 > 4 * tp8.kv_tokens
    assert plan.runner_up.layout.label == "TP8"
    assert plan.choice.startswith("DP8+EP over TP8") and "MLA" in plan.choice
    assert "--data-parallel-size 8 --enable-expert-parallel" in plan.command.serve


def test_deepseek_v3_two_h100_nodes_tp8_pp2_uses_ray():
    only = [Layout(tp=8, pp=2, gpus_per_node=8)]
    plan = plan_model(DEEPSEEK, gpu="H100", gpus=8, nodes=2, only=only)
    rec = plan.recommended
    assert rec.layout.tp == 8 and rec.layout.pp == 2
    assert plan.command.head.startswith("ray start --head")
    assert "ray start --address=" in plan.command.workers
    assert "--distributed-executor-backend ray" in plan.command.serve
    assert "--pipeline-parallel-size 2" in plan.command.serve


def test_deepseek_v3_two_h200_nodes_data_parallel_per_node():
    plan = plan_model(DEEPSEEK, gpu="H200", gpus=8, nodes=2)
    assert plan.recommended.layout.label == "DP16+EP"
    assert plan.runner_up.layout.label == "TP8×PP2"
    # vLLM's multi-node data parallel: one serve per node, the others headless
    assert plan.command.style == "data-parallel"
    assert "--data-parallel-size-local 8" in plan.command.head
    assert (
        "--headless" in plan.command.workers
        and "--data-parallel-start-rank" in plan.command.workers
    )


def test_llama_8b_on_8x_h100_prefers_data_parallel():
    plan = plan_model(LLAMA, gpu="H100", gpus=8)
    assert plan.recommended.layout.label == "DP8"
    assert plan.runner_up.layout.label == "TP8"
    assert "no inter-GPU traffic" in plan.choice
    assert "--data-parallel-size 8" in plan.command.serve
    assert "--tensor-parallel-size" not in plan.command.serve


# ---------------------------------------------------------------------------------------------
# Done-when: Llama-3.1-8B bf16 on one L4, KV capacity by vLLM's own formula


@pytest.mark.parametrize("version", ["0.11.0", "0.33.0"])
def test_llama_8b_on_l4_kv_capacity_is_vllms_formula(version):
    plan = plan_model(
        LLAMA,
        gpu="L4",
        gpus=1,
        options=ServeOptions(max_model_len=8192),
        vllm_version=version,
    )
    p = plan.recommended
    s = p.stages[0]
    per_token = 32 * 8 * 2 * 128 * 2  # layers x KV heads x (K, V) x head_dim x bf16
    assert s.kv_bytes_per_token == per_token == 131072
    block = 16
    # vLLM: requested = ceil(total x util); KV = requested - weights - overheads
    requested = math.ceil(plan.cuda_total * (0.9 if version == "0.11.0" else 0.92))
    assert p.requested == requested
    assert s.available_kv == requested - s.weights.total - s.overheads.in_budget
    num_blocks = s.available_kv // (per_token * block)
    assert s.capacity.num_blocks == num_blocks
    if version == "0.11.0":
        assert p.kv_tokens == num_blocks * block  # kv_cache_utils: blocks // groups x block
    else:
        assert p.kv_tokens == int(num_blocks / math.ceil(8192 / block) * 8192)
    # L4 defaults (below 70 GiB): 2048 batched tokens, 256 sequences
    assert plan.batch.max_num_batched_tokens == 2048 and plan.batch.max_num_seqs == 256
    assert 14.9 * GIB < s.weights.total < 15.1 * GIB
    assert 20_000 < p.kv_tokens < 40_000


def test_llama_8b_on_l4_full_context_does_not_fit_and_command_shortens_it():
    plan = plan_model(LLAMA, gpu="L4", gpus=1)
    assert plan.max_model_len == 131072
    m003 = next(f for f in plan.findings if f.code == "M003")
    assert "KV cache is needed, which is larger than the available KV cache memory" in (
        m003.vllm_message
    )
    assert plan.recommended_len and plan.recommended_len < 131072
    assert f"--max-model-len {plan.recommended_len}" in plan.command.serve


# ---------------------------------------------------------------------------------------------
# KV cache


def test_kv_heads_replicated_when_tp_exceeds_them():
    report = check(LLAMA)
    for tp, heads in ((1, 8), (4, 2), (8, 1), (16, 1)):
        spec = kv_spec(report.model, report.inventory, Layout(tp=tp), "bfloat16", 16)
        assert spec.bytes_per_token(0) == 32 * heads * 2 * 128 * 2


def test_fp8_kv_cache_halves_bytes_and_doubles_tokens():
    bf16 = plan_model(LLAMA, gpu="H100", gpus=1, options=ServeOptions(max_model_len=8192))
    fp8 = plan_model(
        LLAMA, gpu="H100", gpus=1, options=ServeOptions(max_model_len=8192, kv_cache_dtype="fp8")
    )
    a, b = bf16.recommended.stages[0], fp8.recommended.stages[0]
    assert b.kv_bytes_per_token * 2 == a.kv_bytes_per_token
    assert abs(fp8.recommended.kv_tokens / bf16.recommended.kv_tokens - 2) < 0.01
    assert "--kv-cache-dtype fp8" in fp8.command.serve


def test_sliding_window_layers_group_like_vllm():
    report = check(DATA / "gpt-oss-20b")
    spec = kv_spec(report.model, report.inventory, Layout(tp=1), "bfloat16", 16)
    kinds = [s.kind for s in spec.stages[0]]
    assert kinds.count("sliding") == 12 and kinds.count("full") == 12
    from servecheck.plan.kv_cache import capacity, kv_groups

    era = era_for(resolve_version("0.33.0"))
    groups = kv_groups(spec.stages[0], era)
    assert groups.group_size == 12 and groups.count == 2
    cap = capacity(spec.stages[0], 10 * GIB, 131072, 16, era, 8192)
    # a full-length request holds 8192 blocks of the full group and ~520 of the sliding one
    per_request = 8192 + (128 - 1 + 8192 + 15) // 16 + 1
    assert abs(cap.concurrency - cap.num_blocks / per_request) < 1e-9


# ---------------------------------------------------------------------------------------------
# Weights


def test_vocab_padding_and_tp_split():
    assert pad_vocab(151552) == 151552 and pad_vocab(32001) == 32064
    report = check(LLAMA)
    w1 = weights_for(report, Layout(tp=1), capability=90)
    w2 = weights_for(report, Layout(tp=2), capability=90)
    s1, s2 = w1.stages[0], w2.stages[0]
    for kind in ("attn.o_proj", "mlp.gate_up_proj", "mlp.down_proj", "embedding", "lm_head"):
        assert s2.by_kind[kind] * 2 == pytest.approx(s1.by_kind[kind], rel=1e-9)
    assert s2.by_kind["norm"] == s1.by_kind["norm"]  # norms are replicated
    # rotary cache: 131072 positions x 128 x bf16 on every GPU (vLLM counts it in the load)
    assert s1.buffers == s2.buffers == 131072 * 128 * 2


def test_glm_router_fp32_and_mtp_only_with_speculative():
    report = check(GLM_AIR)
    cfg = report.model
    base = weights_for(report, Layout(tp=1), capability=120)
    spec = weights_for(report, Layout(tp=1), capability=120, speculative=True)
    moe_layers = cfg.num_layers - cfg.first_k_dense_replace
    router = base.stages[0].by_kind["moe.router"]
    # fp32 GateLinear [128, 4096] plus the fp32 correction bias, per MoE layer
    assert router == moe_layers * (128 * 4096 * 4 + 128 * 4)
    assert spec.stages[0].total - base.stages[0].total > 1 * GIB  # the MTP layer


def test_expert_parallel_gives_whole_experts_unevenly(tmp_path):
    report = check(GLM_AIR)
    tp3 = weights_for(report, Layout(tp=3, ep=True), capability=120).stages[0]
    tp1 = weights_for(report, Layout(tp=1), capability=120).stages[0]
    # 128 experts over 3 ranks: 43, 43, 42 -> the largest rank holds 43/128
    assert tp3.by_kind["moe.experts"] == pytest.approx(tp1.by_kind["moe.experts"] * 43 / 128)
    problems = check_layout(Layout(tp=3, ep=True), ctx_for(report))
    assert "P010" in codes(problems)


def test_pipeline_partition_matches_vllm():
    # vLLM distributed/utils.py get_pp_indices: remainder to the stages before the last
    assert pp_partition(61, 2) == [(0, 31), (31, 61)]
    assert pp_partition(10, 4) == [(0, 2), (2, 5), (5, 8), (8, 10)]


# ---------------------------------------------------------------------------------------------
# Layouts


def test_layout_errors_quote_vllm():
    report = check(GLM_AIR)
    ctx = ctx_for(report)
    p5 = {f.code: f for f in check_layout(Layout(tp=5), ctx)}
    assert p5["P001"].vllm_message == (
        "Total number of attention heads (96) must be divisible by tensor parallel size (5)."
    )
    p3 = {f.code: f for f in check_layout(Layout(tp=3), ctx)}
    assert p3["P002"].vllm_message == "AssertionError: 8 is not divisible by 3"
    assert p3["P003"].vllm_message == "AssertionError: 151552 is not divisible by 3"
    assert "P012" in codes(check_layout(Layout(tp=1, pp=64), ctx))
    dense = check(LLAMA)
    assert "P009" in codes(check_layout(Layout(tp=2, ep=True), ctx_for(dense)))


def test_startup_utilization_check():
    plan = plan_model(
        LLAMA,
        gpu="H100",
        gpus=2,
        options=ServeOptions(max_model_len=8192, gpu_memory_utilization=0.99),
    )
    tp2 = next(p for p in plan.layouts if p.layout.label == "TP2")
    assert tp2.status == "startup"
    m004 = tp2.findings[0]
    assert m004.code == "M004" and "on startup is less than desired GPU memory" in (
        m004.vllm_message
    )


def test_default_utilization_matches_version_table():
    for version in ("0.11.0", "0.24.0", "0.33.0"):
        v = resolve_version(version)
        assert era_for(v).gpu_memory_utilization == v.feature("gpu_memory_utilization")
    assert era_for(resolve_version("0.19.1")).gpu_memory_utilization == 0.9
    assert era_for(resolve_version("0.20.0")).gpu_memory_utilization == 0.92
    assert era_for(resolve_version("0.6.4")).engine == "V0"


def test_memory_table_rows_have_sources():
    data = table()
    for key in ("era", "batch_tier", "alloc_padding"):
        assert all(row.get("source") for row in data[key]), key
    for key in ("activation", "non_torch", "startup", "cudagraph", "cuda_total", "block_size"):
        assert data[key]["source"], key
    for row in data["cuda_total"]["observed"]:
        find_gpu(row["gpu"])  # every observed row names a GPU of the table


# ---------------------------------------------------------------------------------------------
# check integration and CLI


def test_check_json_has_plan_and_fit_verdict():
    result = invoke(["check", str(GLM_AIR), "--gpu", "RTX PRO 6000", "--format", "json"])
    data = json.loads(result.stdout)
    assert data["plan"]["fits"] is False
    assert data["verdict"] == "fail" and result.exit_code == 1
    assert {"M001", "M008"} <= {f["code"] for f in data["findings"]}
    two = json.loads(
        invoke(["check", str(GLM_AIR), "--gpu", "RTX PRO 6000", "--gpus", "2", "-f", "json"]).stdout
    )
    assert two["plan"]["fits"] and two["plan"]["recommended"] == "TP2"
    assert "M005" in {f["code"] for f in two["findings"]}


def test_plan_cli_formats():
    base = ["plan", str(GLM_AIR), "--gpu", "RTX PRO 6000", "--gpus", "2"]
    text = invoke(base, env={"COLUMNS": "160"})
    assert text.exit_code == 0, text.output
    assert "Recommended: TP2" in text.output and "vllm serve" in text.output
    data = json.loads(invoke([*base, "--format", "json"]).stdout)
    assert data["recommended"] == "TP2" and data["command"].startswith("vllm serve")
    tp2 = next(lay for lay in data["layouts"] if lay["layout"] == "TP2")
    assert tp2["fits"] and tp2["kv_cache_tokens"] > 0 and tp2["stages"][0]["num_blocks"] > 0
    md = invoke([*base, "--format", "markdown"]).stdout
    svg = svg_images(md)
    assert len(svg) == 1 and svg[0].startswith("<svg") and "</svg>" in svg[0]
    assert "<svg" not in md and "```sh" in md  # the chart is an image, not markup in the text
    one = invoke(["plan", str(GLM_AIR), "--gpu", "RTX PRO 6000"])
    assert one.exit_code == 1


def svg_images(md: str) -> list[str]:
    """The SVG documents of the markdown's data-URI images."""
    import base64
    import re

    found = re.findall(r"!\[[^\]]*\]\(data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)\)", md)
    return [base64.b64decode(d).decode("utf-8") for d in found]


def test_check_markdown_embeds_svg():
    report = check(GLM_AIR, target=Target("RTX PRO 6000", "gpu", 120, None, 2))
    from servecheck.render.check.markdown import render_markdown

    md = render_markdown(report)
    assert "## Memory and parallelism plan" in md and "<svg" not in md
    assert "Memory per GPU, TP2" in svg_images(md)[0]


def test_mutated_inputs_are_not_shared():
    # the plan works on the report's data without changing it
    report = check(GLM_AIR)
    before = copy.deepcopy(dict(report.module_bytes))
    make_plan(report, find_gpu("H100"), 4)
    assert dict(report.module_bytes) == before


def test_recommends_higher_utilization_before_shorter_context():
    # llm-d: Qwen3-32B on one H100 at max-model-len 32000 failed at the default 0.9
    qwen = ROOT / "tests" / "data" / "calibration" / "configs" / "Qwen--Qwen3-32B"
    opts = ServeOptions(max_model_len=32000)
    plan = plan_model(qwen, gpu="H100", gpus=1, options=opts, vllm_version="0.11.0")
    assert plan.layouts[0].status == "context"
    assert plan.fits and plan.recommended.utilization == 0.95
    assert "--gpu-memory-utilization 0.95" in plan.command.serve
    assert plan.notes and "0.95" in plan.notes[0]
