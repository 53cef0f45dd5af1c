"""Find and parse a checkpoint's quantization config, for every method vLLM detects."""

from __future__ import annotations

from dataclasses import dataclass, field

from servecheck.findings.registry import Finding
from servecheck.findings.rules import quant_config as rules
from servecheck.model.config import text_config
from servecheck.quant.compressed_tensors import CTConfig, parse_ct
from servecheck.versions import VllmVersion

# Methods vLLM 0.33 registers (model_executor/layers/quantization/__init__.py
# QUANTIZATION_METHODS); servecheck resolves compressed-tensors and fp8 per module.
KNOWN_METHODS = frozenset(
    {
        "awq",
        "awq_marlin",
        "auto_awq",
        "gptq",
        "gptq_marlin",
        "auto_gptq",
        "bitsandbytes",
        "compressed-tensors",
        "fp8",
        "fp8_per_tensor",
        "fbgemm_fp8",
        "fp_quant",
        "gguf",
        "modelopt",
        "modelopt_fp4",
        "modelopt_mixed",
        "modelopt_mxfp8",
        "mxfp4",
        "mxfp8",
        "gpt_oss_mxfp4",
        "moe_wna16",
        "inc",
        "quark",
        "torchao",
        "experts_int8",
        "petit_nvfp4",
        "ptpc_fp8",
        "cpu_awq",
        "deepseek_v4_fp8",
        "humming",
        "tpu_int8",
    }
)
# Source files of vLLM's quantization methods, for citations.
METHOD_FILES = {
    "awq": "awq.py",
    "gptq": "gptq.py",
    "bitsandbytes": "bitsandbytes.py",
    "modelopt": "modelopt.py",
    "modelopt_fp4": "modelopt.py",
    "modelopt_mixed": "modelopt.py",
    "mxfp4": "mxfp4.py",
}
MODELOPT_ALGOS = {
    "FP8": "modelopt",
    "FP8_PER_CHANNEL_PER_TOKEN": "modelopt",
    "FP8_PB_WO": "modelopt",
    "NVFP4": "modelopt_fp4",
    "MIXED_PRECISION": "modelopt_mixed",
}


@dataclass(frozen=True)
class Fp8Spec:
    """vLLM's Fp8Config: serialized fp8 weights, per-tensor or block-wise."""

    activation_scheme: str
    weight_block_size: tuple[int, int] | None
    ignored_layers: tuple[str, ...]
    store_dtype: str | None


@dataclass(frozen=True)
class OtherSpec:
    """Methods servecheck detects and sizes but does not resolve per module yet."""

    bits: int | None
    group_size: int | None
    excluded: tuple[str, ...]
    detail: dict


@dataclass(frozen=True)
class QuantSpec:
    """The quantization a checkpoint declares. method None = unquantized."""

    method: str | None
    source: str | None  # where the config came from
    raw: dict = field(default_factory=dict)
    ct: CTConfig | None = None
    fp8: Fp8Spec | None = None
    other: OtherSpec | None = None
    problems: tuple[Finding, ...] = ()

    @property
    def ignore_list(self) -> tuple[str, ...]:
        if self.ct is not None:
            return self.ct.ignore
        if self.fp8 is not None:
            return self.fp8.ignored_layers
        if self.other is not None:
            return self.other.excluded
        return ()


def find_quant_config(config: dict, hf_quant_config: dict | None) -> tuple[dict | None, str | None]:
    """The raw quantization config and where it was found, in vLLM's order of preference."""
    # vLLM 0.33 transformers_utils/model_arch_config_convertor.py _normalize_quantization_config
    # and transformers_utils/config.py (hf_quant_config.json for ModelOpt <= 0.29).
    if isinstance(config.get("quantization_config"), dict):
        return dict(config["quantization_config"]), "config.json quantization_config"
    if isinstance(config.get("compression_config"), dict):
        return dict(config["compression_config"]), "config.json compression_config"
    text = text_config(config)
    if text is not config and isinstance(text.get("quantization_config"), dict):
        return dict(text["quantization_config"]), "text_config.quantization_config"
    if hf_quant_config is not None:
        return dict(hf_quant_config), "hf_quant_config.json"
    return None, None


def parse_quant(config: dict, hf_quant_config: dict | None, version: VllmVersion) -> QuantSpec:
    raw, source = find_quant_config(config, hf_quant_config)
    if raw is None:
        return QuantSpec(method=None, source=None)
    ver = version.effective
    method, problem = normalize_method(raw, ver)
    if problem is not None:
        return QuantSpec(method=method, source=source, raw=raw, problems=(problem,))
    if method == "compressed-tensors":
        ct = parse_ct(raw, version)
        return QuantSpec(method, source, raw, ct=ct, problems=ct.problems)
    if method == "fp8":
        fp8, problems = parse_fp8(raw, ver)
        return QuantSpec(method, source, raw, fp8=fp8, problems=tuple(problems))
    if method not in KNOWN_METHODS:
        # Whether the release has the method is judged per release (quant/preflight.py).
        return QuantSpec(method, source, raw, other=parse_other(method, raw))
    other = parse_other(method, raw)
    if method in ("mxfp4", "gpt_oss_mxfp4"):
        return QuantSpec(method, source, raw, other=other)  # resolved per module (resolve.py)
    return QuantSpec(method, source, raw, other=other)


def normalize_method(raw: dict, ver: str) -> tuple[str, Finding | None]:
    """vLLM's quant_method normalisation, including ModelOpt's producer/quant_algo form."""
    producer = raw.get("producer") if isinstance(raw.get("producer"), dict) else {}
    inner = raw.get("quantization") if isinstance(raw.get("quantization"), dict) else {}
    if producer.get("name") == "modelopt" or "modelopt_quant_config" in inner:
        algo = inner.get("quant_algo")
        if algo is not None:
            mapped = MODELOPT_ALGOS.get(str(algo).upper())
            if mapped is None:
                return "modelopt", rules.ModeloptAlgoUnknown.make(algo=algo, ver=ver)
            return mapped, None
    method = (
        str(raw.get("quant_method", "")).lower().replace("compressed_tensors", "compressed-tensors")
    )
    if not method:
        return "", rules.UnknownQuantMethod.make(method="", ver=ver)
    return method, None


def parse_fp8(raw: dict, ver: str) -> tuple[Fp8Spec | None, list[Finding]]:
    """vLLM 0.33 model_executor/layers/quantization/fp8.py Fp8Config.from_config/__init__."""
    if "activation_scheme" not in raw:
        return None, [rules.Fp8ActivationSchemeMissing.make(ver=ver)]
    scheme = raw["activation_scheme"]
    if scheme not in ("static", "dynamic"):
        return None, [
            rules.Fp8ConfigInvalid.make(
                problem=f"activation_scheme {scheme!r}",
                fix_text="Use 'dynamic' or 'static'.",
                vllm_text=f"Unsupported activation scheme {scheme}",
                ver=ver,
            )
        ]
    block = raw.get("weight_block_size")
    if block is not None:
        if not isinstance(block, list) or len(block) != 2:
            n = len(block) if isinstance(block, list) else 0
            return None, [
                rules.Fp8ConfigInvalid.make(
                    problem=f"weight_block_size {block!r}",
                    fix_text="Use two block dimensions.",
                    vllm_text=(
                        "The quantization block size of weight must have 2 dimensions, but "
                        f"got {n} dimensions"
                    ),
                    ver=ver,
                )
            ]
        if scheme != "dynamic":
            return None, [
                rules.Fp8ConfigInvalid.make(
                    problem="block-wise weights with static activations",
                    fix_text="Use activation_scheme 'dynamic' with weight_block_size.",
                    vllm_text=(
                        "The block-wise quantization only supports dynamic activation scheme "
                        f"for now, but got {scheme} activation scheme."
                    ),
                    ver=ver,
                )
            ]
    ignored = raw.get("ignored_layers") or raw.get("modules_to_not_convert") or []
    return Fp8Spec(
        activation_scheme=scheme,
        weight_block_size=(int(block[0]), int(block[1])) if block else None,
        ignored_layers=tuple(str(x) for x in ignored),
        store_dtype=raw.get("store_dtype"),
    ), []


def parse_other(method: str, raw: dict) -> OtherSpec:
    """Bits, group size and exclusions of AWQ, GPTQ, bitsandbytes, ModelOpt and MXFP4 configs."""
    inner = raw.get("quantization") if isinstance(raw.get("quantization"), dict) else raw
    bits = raw.get("bits", raw.get("w_bit"))
    if method == "bitsandbytes":
        bits = 4 if raw.get("load_in_4bit") else 8 if raw.get("load_in_8bit") else None
    elif method.startswith("modelopt"):
        bits = {"modelopt": 8, "modelopt_fp4": 4}.get(method)
    elif method in ("mxfp4", "gpt_oss_mxfp4"):
        bits = 4
    excluded = (
        raw.get("modules_to_not_convert")
        or raw.get("llm_int8_skip_modules")
        or inner.get("exclude_modules")
        or []
    )
    group = raw.get("group_size", raw.get("q_group_size", inner.get("group_size")))
    return OtherSpec(
        bits=int(bits) if isinstance(bits, int) else None,
        group_size=int(group) if isinstance(group, int) else None,
        excluded=tuple(str(x) for x in excluded),
        detail={k: v for k, v in inner.items() if not isinstance(v, (list, dict))},
    )
