"""Q012-Q016, R011: the release-level checks vLLM runs on a quantization method before any
module is built (config/model.py _verify_quantization, config/vllm.py _get_quantization_config).
"""

from servecheck.findings.registry import Rule, Severity, rule

VERIFY = "vLLM {ver} config/model.py ModelConfig._verify_quantization"
GET_CONFIG = "vLLM {ver} config/vllm.py VllmConfig._get_quantization_config"


@rule
class MethodNotInRelease(Rule):
    """The checkpoint's quantization method does not exist in this vLLM release.

    ## Why it matters
    vLLM checks the method against its registry before loading anything and refuses to start.
    Methods come and go between releases: GGUF left after 0.23, bitsandbytes after 0.27.

    ## Fix
    Use a release that has the method, or a checkpoint in a method this release supports.
    """

    code = "Q012"
    exception = "ValueError"
    name = "method-not-in-release"
    severity = Severity.ERROR
    message = "quantization method {method!r} is not in vLLM {ver}{history}"
    fix = "{fix_text}"
    vllm_ref = VERIFY
    vllm_message = "Unknown quantization method: {method}. Must be one of {methods}."


@rule
class QuantMethodMismatch(Rule):
    """`--quantization` names a method other than the one the checkpoint declares.

    ## Why it matters
    vLLM compares the two after the override methods had their say and refuses to start.

    ## Fix
    Drop `--quantization` (vLLM reads the checkpoint's method) or pass the checkpoint's.
    """

    code = "Q013"
    exception = "ValueError"
    name = "quantization-flag-mismatch"
    severity = Severity.ERROR
    message = "--quantization {user} contradicts the checkpoint's method {method}"
    fix = "Drop --quantization, or pass --quantization {method}."
    vllm_ref = VERIFY
    vllm_message = (
        "Quantization method specified in the model config ({method}) does not match the "
        "quantization method specified in the `quantization` argument ({user})."
    )


@rule
class DeprecatedQuantMethod(Rule):
    """The quantization method is deprecated in this release.

    ## Why it matters
    Deprecated methods refuse to start unless `--allow-deprecated-quantization` is passed.
    """

    code = "Q014"
    exception = "ValueError"
    name = "deprecated-quant-method"
    severity = Severity.ERROR
    message = "quantization method {method!r} is deprecated in vLLM {ver}"
    fix = "Pass --allow-deprecated-quantization, or re-quantize to a supported method."
    vllm_ref = VERIFY
    vllm_message = (
        "The quantization method {method} is deprecated and will be removed in future "
        "versions of vLLM. To bypass, set `--allow-deprecated-quantization`."
    )


@rule
class ActDtypeNotSupported(Rule):
    """The model dtype vLLM resolved is not one the quantization method supports.

    ## Why it matters
    vLLM checks `get_supported_act_dtypes()` of the method's config class and refuses to
    start; older AWQ and GPTQ kernels, for instance, run float16 only.

    ## Fix
    Pass `--dtype` with a supported type.
    """

    code = "Q015"
    exception = "ValueError"
    name = "act-dtype-unsupported"
    severity = Severity.ERROR
    message = "{method} runs {supported} activations; the model dtype resolves to {dtype}"
    fix = "Pass --dtype {first}."
    vllm_ref = GET_CONFIG
    vllm_message = (
        "torch.{dtype} is not supported for quantization method {method}. Supported dtypes: "
        "[{torch_list}]"
    )


@rule
class CheckpointMethodOverridden(Rule):
    """vLLM runs the checkpoint with another method than the one its config names.

    ## What it does
    Override methods claim checkpoints they can run faster or better (GPTQ and AWQ on
    Marlin kernels, ModelOpt algorithms, gpt-oss MXFP4). servecheck resolves the modules
    with the method vLLM settles on.
    """

    code = "Q016"
    name = "method-overridden"
    severity = Severity.INFO
    message = "quant_method {checkpoint} runs as {method} in vLLM {ver}"
    fix = "Nothing to do."
    vllm_ref = VERIFY


@rule
class MethodNeedsNewerGpu(Rule):
    """The quantization method's minimum compute capability is above the target GPU's.

    ## Why it matters
    vLLM compares every method's `get_min_capability()` with the GPU before building the
    model and raises. The minimum is per release (ModelOpt FP8 needed sm_89 up to 0.26 and
    sm_80 from 0.27, where FP8 runs weight-only on Marlin below sm_89).

    ## Fix
    Use a GPU with at least that capability, another release, or another checkpoint.
    """

    code = "R011"
    exception = "ValueError"
    name = "method-capability"
    severity = Severity.ERROR
    message = "{method} needs compute capability {need} in vLLM {ver}; {gpu} has {have}"
    fix = "Use a GPU with compute capability >= {need}, or a checkpoint in another method."
    vllm_ref = GET_CONFIG
    vllm_message = (
        "The quantization method {method} is not supported for the current GPU. Minimum "
        "capability: {need}. Current capability: {have}."
    )
