"""Q: problems vLLM raises while parsing the quantization config, before any layer is built."""

from servecheck.findings.registry import Rule, Severity, rule

CT = "vLLM {ver} model_executor/layers/quantization/compressed_tensors/compressed_tensors.py"


@rule
class InvalidQuantArgs(Rule):
    """A compressed-tensors QuantizationArgs block fails validation.

    ## What it does
    Validates every `weights`, `input_activations` and `output_activations` block of every
    config group the way compressed-tensors' pydantic model does (the version vLLM pins):
    unknown keys are refused, strategies must agree with group sizes and block structures.

    ## Why it matters
    vLLM parses the config before building a single layer; a validation error stops the
    engine at start-up with a pydantic `ValidationError` or `ValueError`.

    ## Example
    `{"strategy": "group", "num_bits": 4}` without `group_size`.

    ## Fix
    Re-export the checkpoint with a compressed-tensors version that matches vLLM's pin, or
    correct the block by hand.
    """

    code = "Q001"
    exception = "ValidationError"
    name = "invalid-quantization-args"
    severity = Severity.ERROR
    message = "{where}: {error}"
    fix = "Correct the {where} block; it must validate as compressed-tensors QuantizationArgs."
    vllm_ref = "compressed-tensors 0.17.0 quantization/quant_args.py QuantizationArgs"
    vllm_message = "{error}"


@rule
class ActorderGroupRemoved(Rule):
    """Group (dynamic) activation ordering is no longer supported.

    ## What it does
    Flags compressed-tensors weights with `actorder` set to `group`, `dynamic` or `true`.

    ## Why it matters
    vLLM 0.33 rejects such configs while parsing them. GPTQ checkpoints made with
    `actorder: group` load in older releases only.

    ## Example
    `"weights": {"num_bits": 4, "strategy": "group", "group_size": 128, "actorder": "group"}`

    ## Fix
    Use a checkpoint quantized with `actorder: weight` (or none), or an older vLLM.
    """

    code = "Q002"
    exception = "ValueError"
    name = "actorder-group-unsupported"
    severity = Severity.ERROR
    message = "config group {group} uses actorder={actorder!r}, which vLLM {ver} rejects"
    fix = "Use a checkpoint quantized with actorder 'weight' or none, or vLLM 0.24 or older."
    vllm_ref = CT + " _quantization_scheme_map_from_config"
    vllm_message = (
        "Compressed-tensors group/dynamic activation ordering (actorder={actorder!r}) is no "
        "longer supported. Use a checkpoint with static/weight activation ordering or without "
        "activation ordering."
    )


@rule
class SparsityRemoved(Rule):
    """The checkpoint declares sparsity, which vLLM no longer supports.

    ## What it does
    Flags a `sparsity_config` with non-empty `targets` (2:4 sparse checkpoints).

    ## Why it matters
    vLLM raises `DeprecationWarning` as an exception while parsing the config.

    ## Fix
    Use a dense checkpoint, or vLLM 0.11 where 2:4 schemes still existed.
    """

    code = "Q003"
    exception = "DeprecationWarning"
    name = "sparsity-unsupported"
    severity = Severity.ERROR
    message = "sparsity_config targets {targets}; vLLM {ver} removed sparsity support"
    fix = "Use a checkpoint without sparsity (or vLLM 0.11, the last release with 2:4 kernels)."
    vllm_ref = CT + " _parse_sparsity_config"
    vllm_message = (
        "Sparsity support has been removed from compressed-tensors. Please use a model without "
        "sparsity configuration."
    )


@rule
class ActivationFormatWithoutInputs(Rule):
    """An activation-quantization format with integer weights and no input_activations.

    ## What it does
    Mirrors vLLM's assertion: when a group's format is one of `naive-quantized`,
    `int-quantized`, `float-quantized` or `nvfp4-pack-quantized` but the group has no
    `input_activations`, its weights must be float (the W8A16-FP8 case).

    ## Why it matters
    vLLM stops with a bare `AssertionError` while parsing the config.

    ## Fix
    Set the group's `format` to `pack-quantized` for weight-only integer quantization.
    """

    code = "Q004"
    exception = "AssertionError"
    name = "activation-format-without-input-activations"
    severity = Severity.ERROR
    message = "config group {group}: format {format!r} expects input_activations for int weights"
    fix = "Give the group format 'pack-quantized' (weight-only) or add input_activations."
    vllm_ref = CT + " _quantization_scheme_map_from_config"
    vllm_message = "AssertionError"


@rule
class KvCacheSchemeUnsupported(Rule):
    """The kv_cache_scheme is not one vLLM can use.

    ## What it does
    Checks `kv_cache_scheme`: vLLM supports 8-bit float, per-tensor or per-attention-head,
    symmetric.

    ## Why it matters
    vLLM raises `NotImplementedError` when it builds the first attention layer.

    ## Fix
    Re-export with an FP8 (E4M3) symmetric per-tensor KV-cache scheme, or remove it.
    """

    code = "Q005"
    exception = "NotImplementedError"
    name = "kv-cache-scheme-unsupported"
    severity = Severity.ERROR
    message = "kv_cache_scheme {problem}"
    fix = "Use num_bits 8, type float, strategy tensor or attn_head, symmetric; or drop it."
    vllm_ref = CT + " CompressedTensorsKVCacheMethod.validate_kv_cache_scheme"
    vllm_message = "{vllm_text}"


@rule
class Fp8ActivationSchemeMissing(Rule):
    """The fp8 quantization config has no activation_scheme.

    ## Why it matters
    `Fp8Config.from_config` requires the key and raises `ValueError` at start-up.

    ## Fix
    Add `"activation_scheme": "dynamic"` (or "static" when the checkpoint has input scales).
    """

    code = "Q006"
    exception = "ValueError"
    name = "fp8-activation-scheme-missing"
    severity = Severity.ERROR
    message = "quantization_config (fp8) has no activation_scheme"
    fix = 'Add "activation_scheme": "dynamic" to quantization_config.'
    vllm_ref = "vLLM {ver} model_executor/layers/quantization/fp8.py Fp8Config.from_config"
    vllm_message = "Cannot find any of ['activation_scheme'] in the model's quantization config."


@rule
class Fp8ConfigInvalid(Rule):
    """The fp8 quantization config has a value vLLM rejects.

    ## What it does
    Mirrors `Fp8Config.__init__`: activation_scheme must be static or dynamic, block sizes
    must be two-dimensional and need dynamic activations, and the checkpoint must be
    serialized in fp8.

    ## Fix
    Correct the value named in the message.
    """

    code = "Q007"
    exception = "ValueError"
    name = "fp8-config-invalid"
    severity = Severity.ERROR
    message = "quantization_config (fp8): {problem}"
    fix = "{fix_text}"
    vllm_ref = "vLLM {ver} model_executor/layers/quantization/fp8.py Fp8Config.__init__"
    vllm_message = "{vllm_text}"


@rule
class UnknownQuantMethod(Rule):
    """The quantization method is not one vLLM knows.

    ## Why it matters
    vLLM refuses to start: "Unknown quantization method".

    ## Fix
    Check `quant_method` for a typo, or upgrade vLLM.
    """

    code = "Q008"
    exception = "ValueError"
    name = "unknown-quant-method"
    severity = Severity.ERROR
    message = "quant_method {method!r} is not a vLLM quantization method"
    fix = "Correct quant_method, or use a vLLM release that supports {method!r}."
    vllm_ref = "vLLM {ver} config/model.py ModelConfig._verify_quantization"
    vllm_message = "Unknown quantization method: {method}."


@rule
class AttentionGroupSkipped(Rule):
    """A compressed-tensors group that targets only an Attention class is dropped.

    ## Why it matters
    vLLM couples attention quantization with KV-cache quantization and skips such groups
    with a warning; the scheme they describe is not applied.
    """

    code = "Q009"
    name = "attention-group-skipped"
    severity = Severity.INFO
    message = "config group {group} targets {target}; vLLM skips it (attention quant = KV cache)"
    fix = "Nothing to do unless you expected that group to quantize something."
    vllm_ref = CT + " CompressedTensorsConfig.from_config"
    vllm_message = (
        "Skipping CompressedTensors config group for {target}. Attention quant is coupled with "
        "KV-cache quantization in vLLM."
    )


@rule
class MethodRulesNotModelled(Rule):
    """servecheck recognises this quantization method but does not model vLLM's per-module
    decisions for it, so it cannot promise that the checkpoint loads.

    ## Why it matters
    A verdict of OK must mean vLLM's own rules were followed. For a method whose module
    resolution, kernel choice or errors are not modelled, servecheck only counts the bytes
    from the headers; the verdict is at least a warning so nobody mistakes that for a check.

    ## Fix
    Run the checkpoint once on the target (or `servecheck smoke`) before relying on it.
    """

    code = "Q010"
    name = "method-not-modelled"
    severity = Severity.WARNING
    message = (
        "{method}: vLLM's per-module rules for this method are not modelled; bytes are counted "
        "from the headers, but whether it loads on the target is not checked"
    )
    fix = "Try a real load on the target before relying on this checkpoint."
    vllm_ref = "vLLM {ver} model_executor/layers/quantization/{method_file}"


@rule
class ModeloptAlgoUnknown(Rule):
    """A ModelOpt checkpoint names a quant_algo vLLM does not map to a method.

    ## Fix
    Use a ModelOpt export with FP8, FP8_PER_CHANNEL_PER_TOKEN, FP8_PB_WO, NVFP4 or
    MIXED_PRECISION.
    """

    code = "Q011"
    exception = "ValueError"
    name = "modelopt-algo-unknown"
    severity = Severity.ERROR
    message = "ModelOpt quant_algo {algo!r} is not one vLLM maps to a quantization method"
    fix = "Use a ModelOpt export with a supported quant_algo."
    vllm_ref = "vLLM {ver} transformers_utils/model_arch_config_convertor.py"
    vllm_message = "Unknown ModelOpt quant algo: {algo}"
