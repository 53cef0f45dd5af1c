"""R: what vLLM decides, or raises, while choosing a quantization method for each module."""

from servecheck.findings.registry import Rule, Severity, rule

CT_DIR = "vLLM {ver} model_executor/layers/quantization/compressed_tensors"


@rule
class FusedShardsDiffer(Rule):
    """The ignore list covers some, but not all, shards of a fused layer.

    ## What it does
    vLLM fuses `q_proj`/`k_proj`/`v_proj` into `qkv_proj` and `gate_proj`/`up_proj` into
    `gate_up_proj`. When an ignore pattern matches only some of the shards, the fused layer
    would need two precisions at once.

    ## Why it matters
    vLLM raises `ValueError` while building the layer. A common cause is a router pattern
    such as `re:.*mlp.gate` that also matches `mlp.gate_proj` (vLLM matches regexes at the
    start of the name only, so the pattern needs a `$`).

    ## Example
    `"ignore": ["model.layers.0.self_attn.q_proj"]`

    ## Fix
    Ignore every shard of the fused layer (or none); anchor router patterns:
    `re:.*mlp\\.gate$`. Editing the config cannot fix tensors that are already quantized:
    the ignore list must describe how the checkpoint was stored.
    """

    code = "R001"
    exception = "ValueError"
    name = "fused-shards-differ"
    severity = Severity.ERROR
    message = "ignore list covers {covered} but not {uncovered} of fused {module}"
    fix = "List all of {shards} in the ignore list, or none of them (anchor regexes with $)."
    vllm_ref = CT_DIR + "/utils.py should_ignore_layer"
    vllm_message = "{vllm_text}"


@rule
class MoeProjectionsDiffer(Rule):
    """Expert 0's gate, up and down projections resolve to different schemes.

    ## Why it matters
    vLLM builds one fused MoE method per layer and raises `ValueError` when the three
    projections of expert 0 do not share a scheme (typically an ignore entry or target that
    names only `down_proj`).

    ## Fix
    Quantize all expert projections alike, or ignore all three.
    """

    code = "R002"
    exception = "ValueError"
    name = "moe-projections-differ"
    severity = Severity.ERROR
    message = "{module}: expert projections resolve differently ({detail})"
    fix = "Make gate_proj, up_proj and down_proj of the experts share one scheme."
    vllm_ref = CT_DIR + "/compressed_tensors_moe/compressed_tensors_moe.py get_moe_method"
    vllm_message = "All MoE projections need to have same quantization scheme but found multiple"


@rule
class NoCompatibleScheme(Rule):
    """No vLLM compressed-tensors scheme implements this combination of arguments.

    ## Why it matters
    vLLM walks a fixed decision tree (NVFP4, MXFP4, MXFP8, W4A8, WNA16, W8A8 FP8/INT8, ...).
    A combination outside it raises `NotImplementedError` while building the layer.

    ## Fix
    Re-quantize with a supported preset (FP8_DYNAMIC, FP8_BLOCK, W8A8, W4A16, NVFP4, ...).
    """

    code = "R003"
    exception = "NotImplementedError"
    name = "no-compatible-scheme"
    severity = Severity.ERROR
    message = "{module}: no vLLM scheme for weights {weights}, inputs {inputs}, format {format}"
    fix = "Re-quantize with a scheme vLLM implements for this format."
    vllm_ref = CT_DIR + "/compressed_tensors.py _get_scheme_from_parts"
    vllm_message = "No compressed-tensors compatible scheme was found for layer_name='{module}'"


@rule
class Nvfp4InputMismatch(Rule):
    """NVFP4 weights with input activations that are not NVFP4.

    ## Why it matters
    vLLM accepts NVFP4 weights only with NVFP4 activations (W4A4) or none (W4A16) and raises
    `ValueError` otherwise.
    """

    code = "R004"
    exception = "ValueError"
    name = "nvfp4-input-mismatch"
    severity = Severity.ERROR
    message = "{module}: NVFP4 weights with {inputs} input activations"
    fix = "Use NVFP4 input activations or none."
    vllm_ref = CT_DIR + "/compressed_tensors.py _get_scheme_from_parts"
    vllm_message = (
        "For NVFP4 weights, input quantization must also be NVFP4 format, None for NVFP4A16"
    )


@rule
class UnmatchedTarget(Rule):
    """A quantizable layer matches no compressed-tensors target.

    ## What it does
    Reports Linear layers that no config group targets and no ignore entry covers.

    ## Why it matters
    vLLM 0.24 and later silently run such layers unquantized: if the checkpoint stores them
    quantized, the load fails or produces garbage. vLLM 0.11 raised `ValueError` instead.

    ## Fix
    Add the layer to a group's targets, or to `ignore` when it is stored in 16-bit.
    """

    code = "R005"
    exception = "ValueError"
    name = "unmatched-target"
    severity = Severity.WARNING
    message = "{module} matches no target and vLLM {ver} will run it unquantized"
    fix = "Target it in a config group, or add it to ignore if it is stored unquantized."
    vllm_ref = CT_DIR + "/compressed_tensors.py get_scheme_dict"
    vllm_message = "Unable to find matching target for {module} in the compressed-tensors config."


@rule
class UnsupportedMoeScheme(Rule):
    """The experts' scheme has no fused-MoE implementation in vLLM.

    ## Why it matters
    vLLM's compressed-tensors MoE dispatch covers MXFP4, MXFP8, WNA16, NVFP4, W8A8 FP8,
    W8A8 INT8 and W4A8; any other combination raises while the MoE layer is built.
    """

    code = "R006"
    exception = "RuntimeError"
    name = "unsupported-moe-scheme"
    severity = Severity.ERROR
    message = "{module}: no fused-MoE method for weights {weights}, inputs {inputs}"
    fix = "Quantize the experts with a scheme vLLM's fused MoE supports, or ignore them."
    vllm_ref = CT_DIR + "/compressed_tensors_moe/compressed_tensors_moe.py get_moe_method"
    vllm_message = "{vllm_text}"


@rule
class QuantizedEmbedding(Rule):
    """The embedding table is targeted with a scheme vLLM cannot apply to embeddings.

    ## Why it matters
    compressed-tensors embeddings support only weight-only INT group/channel (WNA16); any
    other scheme raises `ValueError`.
    """

    code = "R007"
    exception = "ValueError"
    name = "embedding-scheme-unsupported"
    severity = Severity.ERROR
    message = "{module} is targeted with {weights}; embeddings allow only INT weight-only"
    fix = "Add the embedding to ignore, or quantize it INT weight-only."
    vllm_ref = CT_DIR + "/compressed_tensors.py get_quant_method"
    vllm_message = (
        "compressed-tensors embeddings only support weight-only INT group/channel (WNA16) "
        "quantization, got: {weights}"
    )


@rule
class Fp8FusedShardsDiffer(Rule):
    """fp8 `ignored_layers` names some but not all shards of a fused layer.

    ## Why it matters
    The plain fp8 method matches ignored layers by exact name; a fused layer whose shards are
    listed only partly raises `ValueError` while it is built.
    """

    code = "R008"
    exception = "ValueError"
    name = "fp8-fused-shards-differ"
    severity = Severity.ERROR
    message = "ignored_layers lists {covered} but not {uncovered} of fused {module}"
    fix = "List all of {shards} in ignored_layers, or none."
    vllm_ref = "vLLM {ver} model_executor/layers/quantization/utils/quant_utils.py is_layer_skipped"
    vllm_message = (
        "Detected some but not all shards of {module} are quantized. All shards of fused layers "
        "to have the same precision."
    )


@rule
class IgnoreMatchesNothing(Rule):
    """An ignore entry matches no module vLLM quantizes.

    ## What it does
    Lists ignore entries (names or `re:` patterns) that match no quantizable module, after
    vLLM's own matching rules (regexes match at the start only; fused layers match through
    their shards).

    ## Why it matters
    Usually harmless, but it often reveals a typo, a pattern written for another model, or a
    module vLLM never quantizes anyway (norms, biases, the embedding): such entries change
    nothing.
    """

    code = "R009"
    name = "ignore-matches-nothing"
    severity = Severity.INFO
    message = (
        "{n} ignore {n:entry matches|entries match} no module vLLM quantizes (e.g. {example}); "
        "norms, biases, router gates and embeddings are never quantized, so listing them "
        "changes nothing"
    )
    fix = "Remove them, or correct the names if they were meant to match something."
    vllm_ref = CT_DIR + "/utils.py should_ignore_layer"


@rule
class SchemeNeedsNewerGpu(Rule):
    """The resolved scheme needs a higher compute capability than the target GPU has.

    ## Why it matters
    After choosing a scheme, vLLM checks its minimum capability and raises `RuntimeError`.
    """

    code = "R010"
    exception = "RuntimeError"
    name = "scheme-capability"
    severity = Severity.ERROR
    message = "{scheme} needs compute capability {need}; {gpu} has {have}"
    fix = "Use a GPU with compute capability >= {need}, or a checkpoint with another scheme."
    vllm_ref = CT_DIR + "/compressed_tensors.py _check_scheme_supported"
    vllm_message = (
        "Quantization scheme is not supported for the current GPU. Min capability: {need}. "
        "Current capability: {have}."
    )
