"""K: the checkpoint's tensors (from safetensors headers) against the config and vLLM's loader."""

from servecheck.findings.registry import Rule, Severity, rule

LOADER = "vLLM {ver} model_executor/model_loader/weight_utils.py"


@rule
class UnreadableShard(Rule):
    """A safetensors shard cannot be read, or is shorter than its header says.

    ## Why it matters
    A truncated or corrupt shard (interrupted download) fails when vLLM opens or reads it.

    ## Fix
    Re-download the shard and compare its size and checksum with the source.
    """

    code = "K001"
    exception = "SafetensorError"
    name = "unreadable-shard"
    severity = Severity.ERROR
    message = "{detail}"
    fix = "Re-download {file}."
    vllm_ref = LOADER + " safetensors_weights_iterator"
    vllm_message = "{vllm_text}"


@rule
class IndexNamesMissingShard(Rule):
    """model.safetensors.index.json names shard files that are not present.

    ## Why it matters
    vLLM 0.33 checks the index against the files and raises `FileNotFoundError` before
    loading. vLLM 0.11 and 0.24 silently drop the missing files: the tensors they held are then
    missing (K005), which unquantized models report at load and quantized ones do not.
    """

    code = "K002"
    exception = "FileNotFoundError"
    name = "index-missing-shard"
    severity = Severity.ERROR
    message = "index names {n} shard {n:file that is|files that are} missing: {files}{consequence}"
    fix = "Download the missing shards (or regenerate the index)."
    vllm_ref = LOADER + " filter_duplicate_safetensors_files"
    vllm_message = "{vllm_text}"


@rule
class ShardOutsideIndex(Rule):
    """Safetensors files in the folder that the index does not name.

    ## Why it matters
    vLLM loads only the files the index names; tensors in other files are ignored.
    """

    code = "K003"
    name = "shard-outside-index"
    severity = Severity.WARNING
    message = (
        "{n} safetensors {n:file is|files are} not named in the index and will be skipped: {files}"
    )
    fix = "Remove stray files, or add their tensors to the index's weight_map."
    vllm_ref = LOADER + " filter_duplicate_safetensors_files"


@rule
class IndexWeightMapMismatch(Rule):
    """The index's weight_map disagrees with the shard headers.

    ## Why it matters
    vLLM iterates the tensors in the files, not the index: a tensor listed in the index but
    absent from its shard is simply missing.
    """

    code = "K004"
    name = "index-weight-map-mismatch"
    severity = Severity.WARNING
    message = "{n} {n:tensor is|tensors are} listed in the index but not stored in the named shard"
    fix = "Regenerate model.safetensors.index.json from the shards."
    vllm_ref = LOADER + " filter_duplicate_safetensors_files"


@rule
class MissingTensor(Rule):
    """A tensor the config and quantization scheme imply is not in the checkpoint.

    ## Why it matters
    For unquantized models vLLM stops with "Following weights were not initialized from
    checkpoint"; for quantized models it checks nothing, leaves the parameter uninitialized and
    the model loads and produces garbage (measured on vLLM 0.24 with a missing weight_scale).

    ## Fix
    Use a complete checkpoint, or correct the config (layer counts, ignore list) to match it.
    """

    code = "K005"
    name = "missing-tensor"
    severity = Severity.ERROR
    message = "{n} expected {n:tensor is|tensors are} missing (e.g. {example}); {consequence}"
    fix = "Check that every shard is present and that the config describes this checkpoint."
    vllm_ref = "vLLM {ver} model_executor/model_loader/default_loader.py load_weights"
    vllm_message = "{vllm_text}"


@rule
class UnexpectedTensor(Rule):
    """The checkpoint stores a tensor vLLM has no parameter for, and vLLM raises.

    ## Why it matters
    vLLM's weight loader raises for names it cannot place (ValueError "There is no module or
    parameter named ..." with AutoWeightsLoader, KeyError with hand-written loaders).

    ## Fix
    Remove the tensor from the checkpoint, or fix the config so vLLM builds the parameter
    (for example, a quantized module must not be listed in ignore).
    """

    code = "K006"
    exception = "ValueError"
    name = "unexpected-tensor"
    severity = Severity.ERROR
    message = (
        "{n} checkpoint {n:tensor has|tensors have} no vLLM parameter and {n:stops|stop} the "
        "load (e.g. {example})"
    )
    fix = "{fix_text}"
    vllm_ref = "vLLM {ver} model_executor/models/utils.py AutoWeightsLoader / {loader}"
    vllm_message = "{vllm_text}"


@rule
class TensorSilentlyDropped(Rule):
    """The checkpoint stores tensors vLLM silently skips.

    ## Why it matters
    Harmless for stray biases; a sign of a config/checkpoint mismatch when the skipped
    tensors are scales of a module vLLM runs unquantized (its fp8 weight is then cast without
    its scale: wrong outputs, no error).
    """

    code = "K007"
    name = "tensor-silently-dropped"
    severity = Severity.WARNING
    message = "{n} checkpoint {n:tensor is|tensors are} skipped by vLLM's loader (e.g. {example})"
    fix = "{fix_text}"
    vllm_ref = "vLLM {ver} model_executor/models/utils.py AutoWeightsLoader ignore_unexpected"


@rule
class DtypeContradictsScheme(Rule):
    """A stored weight's dtype contradicts the scheme vLLM resolved for its module.

    ## What it does
    Compares the header dtype of each module's weight with what the resolved scheme
    allocates: FP8 schemes need `F8_E4M3` weights plus scales, WNA16 needs packed `I32`,
    NVFP4 packed `U8` with `F8_E4M3` scales, unquantized modules a 16/32-bit float.

    ## Why it matters
    vLLM casts mismatched weights with `copy_` (logging only a warning) or fails on a shape
    assertion: either the load fails or the model silently computes garbage.

    ## Fix
    Make the config describe the checkpoint: `servecheck fix` derives the ignore list from the
    stored dtypes.
    """

    code = "K008"
    name = "dtype-contradicts-scheme"
    severity = Severity.ERROR
    message = (
        "{n} {n:module is|modules are} stored as {stored} but {n:resolves|resolve} to {expected} "
        "(e.g. {example})"
    )
    fix = "Make the quantization config describe how these modules are stored (servecheck fix)."
    vllm_ref = "vLLM {ver} model_executor/layers/linear.py weight_loader"


@rule
class ShapeMismatch(Rule):
    """A stored tensor's shape differs from the shape the config implies.

    ## Why it matters
    vLLM asserts shapes when it copies weights: "Tried to load weights of size ... to a
    parameter of size ...".
    """

    code = "K009"
    exception = "AssertionError"
    name = "shape-mismatch"
    severity = Severity.ERROR
    message = (
        "{n} {n:tensor has a shape|tensors have shapes} the config does not imply (e.g. {example})"
    )
    fix = "Check hidden/intermediate sizes, head counts and vocab size in config.json."
    vllm_ref = "vLLM {ver} model_executor/layers/linear.py weight_loader"
    vllm_message = "Tried to load weights of size {stored} to a parameter of size {expected}"


@rule
class LayerCountMismatch(Rule):
    """The checkpoint has a different number of decoder layers than the config says.

    ## Why it matters
    Missing layers leave parameters uninitialized; extra layers have no module to load into.
    """

    code = "K010"
    name = "layer-count-mismatch"
    severity = Severity.ERROR
    message = "config says {expected} decoder layers; the checkpoint stores {stored}"
    fix = "Set num_hidden_layers to match the checkpoint, or use the complete checkpoint."
    vllm_ref = "vLLM {ver} model_executor/models/utils.py make_layers"


@rule
class TiedEmbeddingsMismatch(Rule):
    """tie_word_embeddings disagrees with the presence of lm_head.weight.

    ## Why it matters
    With `tie_word_embeddings: false` and no `lm_head.weight`, the output projection stays
    uninitialized (vLLM errors for unquantized models, produces garbage for quantized ones).
    With `true` and a stored `lm_head.weight`, vLLM skips the stored head.
    """

    code = "K011"
    name = "tied-embeddings-mismatch"
    severity = Severity.ERROR
    message = "{detail}"
    fix = "{fix_text}"
    vllm_ref = "vLLM {ver} model_executor/models/utils.py AutoWeightsLoader"


@rule
class QuantizedRouterGate(Rule):
    """The MoE router gate is stored quantized, but vLLM builds it unquantized.

    ## What it does
    GLM-4.5/4.6, DeepSeek-V3 and Mixtral build the router (`mlp.gate`) without the
    quantization config, in fp32 (GLM) or the model dtype. A checkpoint that stores it as FP8
    with a `weight_scale` cannot be loaded.

    ## Why it matters
    The fp8 weight is cast into the fp32 parameter without its scale (silently wrong routing)
    and the `weight_scale` tensor has nowhere to go: vLLM 0.33 raises ValueError "There is no
    module or parameter named ...weight_scale"; older releases raise KeyError.

    ## Fix
    Re-quantize with the router ignored (`re:.*mlp\\.gate$`); editing config.json cannot fix
    the stored tensors.
    """

    code = "K012"
    exception = "ValueError"
    name = "quantized-router-gate"
    severity = Severity.ERROR
    message = (
        "{n} router {n:gate is|gates are} stored quantized; {arch} builds {n:it|them} "
        "unquantized ({example})"
    )
    fix = "Re-quantize with the router kept in 16-bit: ignore 're:.*mlp\\.gate$'."
    vllm_ref = "vLLM {ver} model_executor/models/{model_file}"
    vllm_message = "{vllm_text}"


@rule
class MtpLayersMissing(Rule):
    """The config declares MTP (next-token prediction) layers the checkpoint does not store.

    ## Why it matters
    The base model loads (vLLM skips MTP layers), but MTP speculative decoding
    (`--speculative-config` with method `mtp`) cannot work.
    """

    code = "K013"
    name = "mtp-layers-missing"
    severity = Severity.WARNING
    message = "num_nextn_predict_layers is {n} but no MTP layer tensors are stored"
    fix = "Do not enable MTP speculative decoding, or set num_nextn_predict_layers to 0."
    vllm_ref = "vLLM {ver} model_executor/models/utils.py skip_spec_layers"


@rule
class DuplicateTensor(Rule):
    """The same tensor name appears in more than one shard.

    ## Why it matters
    vLLM loads both; the later copy wins, which hides which one is meant.
    """

    code = "K014"
    name = "duplicate-tensor"
    severity = Severity.WARNING
    message = "{n} {n:tensor appears|tensors appear} in more than one shard (e.g. {example})"
    fix = "Remove the duplicates."
    vllm_ref = LOADER + " safetensors_weights_iterator"


@rule
class ConfigOnly(Rule):
    """Only a config was given: tensors are inferred from the architecture.

    ## Why it matters
    Every tensor name, dtype and byte count is computed, not read: checkpoint defects (missing
    scales, a quantized router, wrong dtypes) cannot be seen.
    """

    code = "K015"
    name = "config-only"
    severity = Severity.INFO
    message = "no safetensors files: tensors and sizes are inferred from config.json"
    fix = "Point servecheck at the checkpoint folder (headers only are read) to audit tensors."
    vllm_ref = "servecheck"


@rule
class ArchitectureNotModelled(Rule):
    """servecheck does not model this architecture; modules come from tensor names.

    ## Why it matters
    Fused layers, vLLM class names and which modules receive the quantization config are
    guessed, so resolution and audit are approximate.
    """

    code = "K016"
    name = "architecture-not-modelled"
    severity = Severity.WARNING
    message = "{arch} is not modelled: modules were derived from the checkpoint's tensor names"
    fix = "Treat module-level results as approximate."
    vllm_ref = "vLLM {ver} model_executor/models/registry.py"
