"""D: the model dtype vLLM resolves from `--dtype` and the config, and what it refuses."""

from servecheck.findings.registry import Rule, Severity, rule

DTYPE_REF = "vLLM {ver} config/model.py _get_and_verify_dtype"


@rule
class Bfloat16NeedsAmpere(Rule):
    """bfloat16 was asked for on a GPU below compute capability 8.0.

    ## Why it matters
    The GPU worker checks the dtype before loading and raises; bfloat16 needs Ampere (sm_80)
    or newer.

    ## Fix
    `--dtype half` (float16); check the model tolerates float16 first.
    """

    code = "D001"
    exception = "ValueError"
    name = "bfloat16-needs-sm80"
    severity = Severity.ERROR
    message = "bfloat16 needs compute capability 8.0; {gpu} has {have}"
    fix = "Pass --dtype half (float16) instead."
    vllm_ref = "vLLM {ver} platforms/cuda.py CudaPlatform.check_if_supports_dtype"
    vllm_message = (
        "Bfloat16 is only supported on GPUs with compute capability of at least 8.0. Your "
        "{gpu} GPU has compute capability {have}. You can use float16 instead by explicitly "
        "setting the `dtype` flag in CLI, for example: --dtype=half."
    )


@rule
class DtypeFallback(Rule):
    """`--dtype auto` falls back from the config's dtype to one the device supports.

    ## Why it matters
    vLLM casts the weights (for example bfloat16 to float16 below sm_80) and warns; a model
    trained in bfloat16 can overflow in float16.

    ## Fix
    Check the outputs, or run on a GPU that supports the config's dtype.
    """

    code = "D002"
    name = "dtype-fallback"
    severity = Severity.WARNING
    message = "{gpu} does not support {config_dtype}; vLLM falls back to {dtype}"
    fix = "Check the model's outputs in {dtype}, or use a GPU with bfloat16 (sm_80 or newer)."
    vllm_ref = "vLLM {ver} config/model.py _resolve_auto_dtype"
    vllm_message = (
        "Your device '{gpu}' (with compute capability {have}) doesn't support "
        "torch.{config_dtype}. Falling back to torch.{dtype} for compatibility."
    )


@rule
class Float16NotSupported(Rule):
    """The model type refuses float16.

    ## Why it matters
    vLLM lists model types that are numerically unstable in float16 and raises for them.
    """

    code = "D003"
    exception = "ValueError"
    name = "float16-not-supported"
    severity = Severity.ERROR
    message = "model type {model_type!r} does not support float16"
    fix = "Use --dtype bfloat16 (sm_80 or newer) or float32."
    vllm_ref = "vLLM {ver} config/model.py _check_valid_dtype"
    vllm_message = (
        "The model type {model_type!r} does not support float16. Reason: Numerical "
        "instability. Please use bfloat16 or float32 instead."
    )


@rule
class UnknownDtype(Rule):
    """`--dtype` names a type vLLM does not know.

    ## Why it matters
    vLLM maps the name to a torch dtype while building the model config and raises.
    """

    code = "D004"
    exception = "ValueError"
    name = "unknown-dtype"
    severity = Severity.ERROR
    message = "--dtype {dtype!r} is not one of auto, half, float16, bfloat16, float, float32"
    fix = "Pass one of auto, half, float16, bfloat16, float, float32."
    vllm_ref = DTYPE_REF
    vllm_message = "Unknown dtype: {dtype!r}"
