"""W: what vLLM raises for GPTQ and AWQ checkpoints (quantization/auto_gptq.py, auto_awq.py,
gptq.py, awq.py and utils/marlin_utils.py of each release)."""

from servecheck.findings.registry import Rule, Severity, rule

QDIR = "vLLM {ver} model_executor/layers/quantization"


@rule
class GptqDescActRemoved(Rule):
    """The GPTQ checkpoint uses group activation ordering (desc_act=True), removed in vLLM 0.30.

    ## Why it matters
    vLLM validates the GPTQ config while building it and raises before loading anything.
    Activation ordering is a no-op (and accepted) only with one group per channel
    (group_size -1).

    ## Fix
    Use a checkpoint quantized with desc_act=False (or static ordering), or vLLM 0.29.
    """

    code = "W001"
    exception = "ValueError"
    name = "gptq-desc-act-removed"
    severity = Severity.ERROR
    message = "GPTQ desc_act=True with grouped scales is no longer supported in vLLM {ver}"
    fix = "Re-quantize with desc_act=False, or use vLLM 0.29 or older."
    vllm_ref = QDIR + "/utils/gptq_utils.py normalize_and_validate_gptq_desc_act"
    vllm_message = (
        "GPTQ group activation ordering (desc_act=True) is no longer supported. Use a "
        "checkpoint with static activation ordering or desc_act=False."
    )


@rule
class Wna16ConfigRejected(Rule):
    """vLLM's GPTQ / AWQ config class refuses the checkpoint's bits or symmetry.

    ## Why it matters
    The config is built before the model; the error stops the start.
    """

    code = "W002"
    exception = "ValueError"
    name = "wna16-config-rejected"
    severity = Severity.ERROR
    message = "{config_class} rejects this config: {vllm_text}"
    fix = "Use a checkpoint with bits and symmetry vLLM's kernels support (4-bit AWQ, 4/8-bit "
    fix += "symmetric GPTQ)."
    vllm_ref = QDIR
    vllm_message = "{vllm_text}"


@rule
class MarlinUnsupported(Rule):
    """The GPTQ linear method needs a Marlin kernel this GPU or group size cannot run.

    ## Why it matters
    From vLLM 0.22 every GPTQ layer runs through the Marlin-family linear method, which
    verifies Marlin support when it is built: no Marlin types below sm_75, group sizes
    -1, 32, 64 and 128 only.

    ## Fix
    Use a GPU of sm_75 or newer, or a checkpoint with a supported group size.
    """

    code = "W003"
    exception = "ValueError"
    name = "marlin-unsupported"
    severity = Severity.ERROR
    message = "{method}: {vllm_text}"
    fix = "Use a GPU of compute capability 7.5 or newer, or a group size of -1, 32, 64 or 128."
    vllm_ref = QDIR + "/utils/marlin_utils.py verify_marlin_supported"
    vllm_message = "{vllm_text}"


@rule
class Wna16TpMisaligned(Rule):
    """A GPTQ / AWQ layer's tensor-parallel shard is not a whole number of groups or packs.

    ## Why it matters
    The unoptimized GPTQ and AWQ linear methods check the shard while creating weights.
    """

    code = "W004"
    exception = "ValueError"
    name = "wna16-tp-misaligned"
    severity = Severity.ERROR
    message = "the {side} size of a layer's shard is not aligned with the quantized weight shape"
    fix = "Use a smaller --tensor-parallel-size."
    vllm_ref = QDIR + "/gptq.py GPTQLinearMethod.create_weights"
    vllm_message = "{vllm_text}"
