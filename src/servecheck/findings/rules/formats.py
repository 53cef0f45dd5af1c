"""F: what vLLM does and raises for quantization applied while loading (``--quantization fp8``
and the online shorthands), bitsandbytes, GGUF and Quark checkpoints."""

from servecheck.findings.registry import Rule, Severity, rule

QDIR = "vLLM {ver} model_executor/layers/quantization"


@rule
class OnlineQuantization(Rule):
    """The checkpoint's 16-bit weights are quantized while vLLM loads them.

    ## Why it matters
    With ``--quantization fp8`` (or an online shorthand such as ``fp8_per_tensor``,
    ``fp8_per_block``, ``mxfp8``) on an unquantized checkpoint, or ``--quantization
    bitsandbytes`` on one, vLLM reads the 16-bit weights and keeps the quantized ones: the GPU
    holds about half (FP8) or a quarter (4-bit) of the checkpoint's weight bytes, and the
    layers run the quantized kernels shown in the report.

    ## Example
    ``servecheck check ./Llama-3.1-8B-Instruct --gpu L40S -- --quantization fp8``
    """

    code = "F001"
    name = "online-quantization"
    severity = Severity.INFO
    message = (
        "Weights are quantized to {fmt} while loading: {what}; the GPU holds the quantized "
        "weights ({bits} bits per parameter plus scales)"
    )
    fix = "Nothing to fix; use a pre-quantized checkpoint to skip the quantization at start-up."
    vllm_ref = QDIR + "/{source}"


@rule
class Fp8OnlineDeprecated(Rule):
    """``--quantization fp8`` on an unquantized checkpoint is deprecated in this release.

    ## Why it matters
    From vLLM 0.31 the ``fp8`` method no longer quantizes a 16-bit checkpoint itself: the
    loader hands the checkpoint to the ``fp8_per_tensor`` online method and logs a
    deprecation warning. The result is the same; a later release may drop the alias.

    ## Fix
    Pass ``--quantization fp8_per_tensor``.
    """

    code = "F002"
    name = "fp8-online-deprecated"
    severity = Severity.WARNING
    message = "--quantization fp8 on an unquantized checkpoint is deprecated in vLLM {ver}"
    fix = "Use --quantization fp8_per_tensor."
    vllm_ref = "vLLM {ver} model_executor/model_loader/weight_utils.py get_quant_config"
    vllm_message = (
        "--quantization fp8 is deprecated for online quantization; use --quantization "
        "fp8_per_tensor instead."
    )


@rule
class BnbPrequantTensorParallel(Rule):
    """A pre-quantized bitsandbytes checkpoint cannot be split with tensor parallelism.

    ## Why it matters
    vLLM's bitsandbytes loader keeps each weight's quantization state whole; with more than
    one tensor-parallel rank it raises before loading.

    ## Fix
    Use pipeline parallelism (``-pp``) instead of ``-tp``, or quantize in flight
    (``--quantization bitsandbytes`` on the unquantized checkpoint), which TP supports.
    """

    code = "F003"
    exception = "ValueError"
    name = "bnb-prequant-tensor-parallel"
    severity = Severity.ERROR
    message = "Pre-quantized bitsandbytes weights with tensor parallel size {tp}"
    fix = "Use --pipeline-parallel-size {tp} instead of --tensor-parallel-size {tp}."
    vllm_ref = (
        "vLLM {ver} model_executor/model_loader/bitsandbytes_loader.py _verify_model_compatibility"
    )
    vllm_message = (
        "Prequant BitsAndBytes models with tensor parallelism is not supported. Please try "
        "with pipeline parallelism."
    )


@rule
class Bnb8bitExperts(Rule):
    """bitsandbytes 8-bit has no MoE method: building the experts raises.

    ## Why it matters
    BitsAndBytesMoEMethod creates 4-bit expert weights only; for 8-bit it raises
    NotImplementedError while the model is built.

    ## Fix
    Use a 4-bit bitsandbytes checkpoint (or ``load_in_4bit``), or another method for MoE models.
    """

    code = "F004"
    exception = "NotImplementedError"
    name = "bnb-8bit-experts"
    severity = Severity.ERROR
    message = "{module}: bitsandbytes 8-bit experts are not supported"
    fix = "Use 4-bit bitsandbytes or another quantization method for MoE layers."
    vllm_ref = QDIR + "/bitsandbytes.py BitsAndBytesMoEMethod._create_weights_8bit"
    vllm_message = ""


@rule
class Bnb8bitEager(Rule):
    """bitsandbytes 8-bit runs without CUDA graphs.

    ## Why it matters
    vLLM turns on eager mode for 8-bit bitsandbytes checkpoints (the 8-bit matmul does not
    support CUDA graph capture): decoding is slower than with CUDA graphs.

    ## Fix
    A 4-bit bitsandbytes checkpoint keeps CUDA graphs.
    """

    code = "F005"
    name = "bnb-8bit-eager"
    severity = Severity.WARNING
    message = "bitsandbytes 8-bit: vLLM falls back to eager mode (no CUDA graphs)"
    fix = "Use 4-bit bitsandbytes, or accept slower decoding."
    vllm_ref = "vLLM {ver} config/model.py _verify_bnb_config"
    vllm_message = (
        "CUDA graph is not supported on BitsAndBytes 8bit yet, fallback to the eager mode."
    )


@rule
class BnbPackageNeeded(Rule):
    """vLLM imports the bitsandbytes package for this checkpoint; vLLM does not install it.

    ## Why it matters
    ``pip install vllm`` does not bring bitsandbytes; without it (or with an older version)
    building the first quantized layer raises ImportError. The vllm-openai image ships it.

    ## Fix
    ``pip install "bitsandbytes>={need}"`` next to vLLM.
    """

    code = "F006"
    name = "bnb-package-needed"
    severity = Severity.INFO
    message = "bitsandbytes>={need} must be installed next to vLLM {ver}"
    fix = 'pip install "bitsandbytes>={need}"'
    vllm_ref = QDIR + "/bitsandbytes.py"
    vllm_message = (
        "Please install bitsandbytes>={need} via `pip install bitsandbytes>={need}` to use "
        "bitsandbytes quantizer."
    )


@rule
class BnbConfigRejected(Rule):
    """vLLM's BitsAndBytesConfig refuses the checkpoint's configuration.

    ## Why it matters
    The quantization config is built before the model; the error stops the start.
    """

    code = "F007"
    exception = "ValueError"
    name = "bnb-config-rejected"
    severity = Severity.ERROR
    message = "BitsAndBytesConfig rejects this config: {vllm_text}"
    fix = "Use bnb_4bit_quant_storage 'uint8' (the bitsandbytes default)."
    vllm_ref = QDIR + "/bitsandbytes.py BitsAndBytesConfig.__init__"
    vllm_message = "{vllm_text}"


@rule
class GgufRemoved(Rule):
    """This vLLM release cannot load GGUF files.

    ## Why it matters
    vLLM 0.10-0.23 load a ``.gguf`` file (``vllm serve ./model-Q4_K_M.gguf``); from 0.24 the
    GGUF loader and the ``gguf`` quantization method are gone, and a ``.gguf`` path is read as a
    model folder without a config: the engine refuses it at start-up.

    ## Fix
    Serve it with vLLM 0.23 (``pip install vllm==0.23.0``), or use the safetensors checkpoint
    the GGUF file was made from.
    """

    code = "F008"
    exception = "ValueError"
    name = "gguf-removed"
    severity = Severity.ERROR
    message = "vLLM {ver} has no GGUF loader (removed in 0.24.0): {file} cannot be served"
    fix = "Use vLLM 0.23.0 or older, or the model's safetensors checkpoint."
    vllm_ref = "vLLM {ver} transformers_utils/config.py get_config"
    # the first line of the message; it goes on to list what a model folder must hold
    vllm_message = (
        "Invalid repository ID or local directory specified: '{file}'. Please verify the "
        "following requirements: ..."
    )


@rule
class GgufTypeUnsupported(Rule):
    """A tensor is stored in a GGML type vLLM's GGUF kernels do not take.

    ## Why it matters
    vLLM's GGUF linear layers take the unquantized types (F32, F16, BF16) and the types its
    dequantize kernels know (Q4_0 ... Q8_1, the K-quants Q2_K ... Q6_K, the I-quants); any
    other type (Q8_K, TQ1_0, MXFP4 ...) raises after every weight has been read.

    ## Fix
    Re-quantize the file with a supported type (llama-quantize ... Q4_K_M).
    """

    code = "F009"
    exception = "ValueError"
    name = "gguf-type-unsupported"
    severity = Severity.ERROR
    message = (
        "{module}: stored as GGML type {gtype} ({tensor}), which vLLM {ver}'s GGUF kernels do "
        "not take (F32/F16/BF16, Q4_0-Q8_1, Q2_K-Q6_K and the I-quants)"
    )
    fix = "Re-quantize the GGUF file with a supported type (e.g. Q4_K_M, Q8_0)."
    vllm_ref = QDIR + "/gguf.py GGUFLinearMethod.process_weights_after_loading"
    vllm_message = "{vllm_text}"


@rule
class GgufSlowExperts(Rule):
    """MoE experts whose GGML types have no fused GGUF MoE kernel run a slow path.

    ## Why it matters
    vLLM's GGUF MoE runs the MMQ kernel (ggml_moe_a8) or the vector kernel (ggml_moe_a8_vec)
    for the quantized types that have them; other types (F16/F32 experts among them) fall back
    to a loop over tokens and experts, much slower.
    """

    code = "F010"
    name = "gguf-slow-experts"
    severity = Severity.WARNING
    message = "{module}: experts in {gtype} have no fused GGUF MoE kernel; vLLM loops per token"
    fix = "Re-quantize the experts to a K-quant or Q8_0."
    vllm_ref = QDIR + "/gguf.py _fused_moe_gguf"
    vllm_message = (
        "There is no support for fast MoE kernel for current quantization method. Falling back "
        "to slow implementation."
    )


@rule
class QuarkRejects(Rule):
    """vLLM's Quark integration refuses a layer's quantization config.

    ## Why it matters
    vLLM picks a Quark scheme per layer while it builds the model (QuarkConfig
    _get_scheme_cls_from_config, quark_moe.py for experts); a config it has no scheme for,
    fused shards with different configs, or a config without its ``export`` section stop the
    start before any weight is read.

    ## Fix
    Re-export the checkpoint with a scheme this vLLM release supports (FP8 W8A8, INT8 W8A8,
    OCP MX, NVFP4 ...), or use a release that has the scheme.
    """

    code = "F011"
    exception = "NotImplementedError"
    name = "quark-rejects"
    severity = Severity.ERROR
    message = "{module}: vLLM {ver}'s Quark integration refuses this layer's config"
    fix = "Re-export with a scheme this release supports, or use a release that has it."
    vllm_ref = QDIR + "/quark/quark.py QuarkConfig"
    vllm_message = "{vllm_text}"
