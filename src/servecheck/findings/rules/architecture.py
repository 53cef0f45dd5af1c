"""A: the architecture itself: whether the chosen vLLM release serves it, and how well
servecheck knows its layout."""

from servecheck.findings.registry import Rule, Severity, rule

REGISTRY = "vLLM {ver} model_executor/models/registry.py"


@rule
class ArchitectureNotSupported(Rule):
    """The chosen vLLM release does not know this architecture.

    ## Why it matters
    vLLM looks the config's `architectures` up in its model registry before anything else; an
    unknown name stops the engine with a `ValueError` before any weight is read. vLLM falls
    back to its Transformers backend only when the installed transformers implements the
    class (or the config's `auto_map` names custom code and `--trust-remote-code` is given).

    ## Example
    `Qwen3NextForCausalLM` on vLLM 0.10.0 (added in 0.10.2).

    ## Fix
    Use a vLLM release that lists the architecture (the message says from which release), or
    `--model-impl transformers` when transformers implements it.
    """

    code = "A001"
    exception = "ValueError"
    name = "architecture-not-supported"
    severity = Severity.ERROR
    message = "vLLM {ver} does not know the architecture {arch}{since}"
    fix = "{fix}"
    vllm_ref = REGISTRY + " _ModelRegistry._raise_for_unsupported"
    vllm_message = (
        "Model architectures {archs} are not supported for now. Supported architectures: "
        "dict_keys([...])"
    )


@rule
class ArchitectureRemoved(Rule):
    """The architecture was served by an older vLLM release and removed since.

    ## Why it matters
    vLLM keeps a list of removed architectures and refuses them with a `ValueError` naming
    the last release that served them.

    ## Fix
    Use that release (or an older one), or a checkpoint of a still-supported architecture.
    """

    code = "A002"
    exception = "ValueError"
    name = "architecture-removed"
    severity = Severity.ERROR
    message = "{arch} was removed from vLLM after {last}; vLLM {ver} refuses it"
    fix = "Use vLLM {last} or older for this checkpoint."
    vllm_ref = REGISTRY + " _PREVIOUSLY_SUPPORTED_MODELS"
    vllm_message = (
        "Model architecture {arch} was supported in vLLM until v{last}, and is not supported "
        "anymore. Please use an older version of vLLM if you want to use this model "
        "architecture."
    )


@rule
class ArchitectureMovedToPlugin(Rule):
    """The architecture now lives in an out-of-tree vLLM plugin.

    ## Why it matters
    vLLM raises a `ValueError` pointing at the plugin instead of loading the model.

    ## Fix
    Install the plugin named in the message.
    """

    code = "A003"
    exception = "ValueError"
    name = "architecture-moved-to-plugin"
    severity = Severity.ERROR
    message = "vLLM {ver} serves {arch} only through a plugin ({url})"
    fix = "Install the plugin at {url}."
    vllm_ref = REGISTRY + " _OOT_SUPPORTED_MODELS"
    vllm_message = (
        "Model architecture {arch} is not supported in-tree anymore. Please install the plugin "
        "at {url} if you want to use this model architecture."
    )


@rule
class ArchitectureApproximate(Rule):
    """servecheck has no exact record of this architecture; its modules are derived from the
    config's conventions.

    ## Why it matters
    Hidden size, layers, heads, KV heads, head size, MLP and expert sizes come from the usual
    Hugging Face config keys, laid out as a Llama-style decoder. Module names, fused layers,
    extra norms, towers and layer kinds the model may have are not known, so byte counts,
    the KV cache and quantization matching are approximate.

    ## Fix
    Treat module-level results and memory figures as estimates; pass the checkpoint folder so
    the stored tensors are read.
    """

    code = "A004"
    name = "architecture-approximate"
    severity = Severity.WARNING
    message = (
        "{arch} is not modelled exactly: its inventory is derived from config.json conventions "
        "and is approximate{detail}"
    )
    fix = "Treat module-level results and memory figures as estimates."
    vllm_ref = REGISTRY + " ({served})"


@rule
class ConfigSizesMissing(Rule):
    """config.json leaves out sizes the model's modules need.

    ## Why it matters
    transformers' config class for the model fills the missing keys with its own defaults
    when vLLM reads the config; servecheck does not know those defaults, so the modules they
    size (attention heads, MLP width) count as empty: weights, the KV cache and the plan are
    too small.

    ## Fix
    Write the sizes into config.json (save the config with transformers' save_pretrained,
    which writes every key).
    """

    code = "A007"
    name = "config-sizes-missing"
    severity = Severity.WARNING
    message = (
        "config.json has no {keys}: {arch}'s config class fills a default servecheck does not "
        "know, so {what} are sized as empty and the memory figures are too small"
    )
    fix = "Add {keys} to config.json (transformers' save_pretrained writes every key)."
    vllm_ref = "vllm/transformers_utils/config.py get_config (AutoConfig.from_pretrained)"


@rule
class TransformersBackend(Rule):
    """vLLM serves this architecture through its Transformers backend.

    ## Why it matters
    The model runs transformers' own modules with vLLM's attention and parallel linears:
    module names follow the checkpoint (no fused `qkv_proj` / `gate_up_proj`), and only what
    the transformers implementation supports (its tensor-parallel plan) is available.
    """

    code = "A005"
    name = "transformers-backend"
    severity = Severity.INFO
    message = "vLLM {ver} serves {arch} through its Transformers backend ({served})"
    fix = "Nothing to do; install a transformers release that implements {arch}."
    vllm_ref = REGISTRY + " _TRANSFORMERS_SUPPORTED_MODELS"


@rule
class CustomCodeArchitecture(Rule):
    """The architecture is not in vLLM's registry, but the config names custom model code.

    ## Why it matters
    With `--trust-remote-code`, vLLM loads the `auto_map` class and serves it through its
    Transformers backend if that class is compatible; without the flag it stops with the
    "not supported" `ValueError`. Nothing about its layout is known.

    ## Fix
    Pass `--trust-remote-code` and check that the remote code supports vLLM's backend.
    """

    code = "A006"
    name = "custom-code-architecture"
    severity = Severity.WARNING
    message = (
        "vLLM {ver} does not know {arch}; it can only run the config's custom code ({auto_map}) "
        "through the Transformers backend with --trust-remote-code"
    )
    fix = "Pass --trust-remote-code; confirm the custom code supports vLLM's Transformers backend."
    vllm_ref = REGISTRY + " _try_resolve_transformers"
