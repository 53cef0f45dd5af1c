"""L: the launch itself: `vllm serve` arguments as the chosen release reads them.

The argument table comes from the release's own argument definitions (knowledge/vllm_args.toml);
the derived maximum context from its `_get_and_verify_max_len` (knowledge/vllm_max_len.toml).
"""

from servecheck.findings.registry import Rule, Severity, rule

ARGPARSE = "vLLM {ver} engine/arg_utils.py EngineArgs.add_cli_args"


@rule
class UnknownArgument(Rule):
    """An argument the chosen vLLM release does not define.

    ## What it does
    Reads the launch with the release's own argument table (extracted from its wheel). An option
    no table row names is reported with the words around it.

    ## Why it matters
    `vllm serve` stops with "unrecognized arguments" (argparse exits with status 2) unless a
    plugin or a platform adds the option. Options are often renamed or removed between
    releases (`--disable-log-requests`, `--task`, `-O` meaning).

    ## Example
    `--max-num-sequences 64` (the option is `--max-num-seqs`), or `--enforce_eager true` (a
    flag takes no value: `true` is left over).

    ## Fix
    Use the release's spelling, or drop the option.
    """

    code = "L001"
    name = "unknown-argument"
    severity = Severity.WARNING
    message = "vLLM {release} does not define {args}"
    fix = "{suggestion}"
    vllm_ref = ARGPARSE
    vllm_message = "vllm serve: error: unrecognized arguments: {raw}"


@rule
class InvalidArgumentValue(Rule):
    """A value vLLM's argument parser rejects.

    ## Why it matters
    `vllm serve` exits before loading anything, with argparse's message and status 2: a
    binary suffix with a decimal (`1.5K`), a choice the release does not offer (`--dtype bf16`),
    JSON that does not parse, an option without its value.

    ## Fix
    Write the value the way the message says.
    """

    code = "L002"
    exception = "SystemExit"
    name = "invalid-argument-value"
    severity = Severity.ERROR
    message = "{option}: {detail}"
    fix = "{suggestion}"
    vllm_ref = ARGPARSE
    vllm_message = "vllm serve: error: {detail}"


@rule
class ArgumentNotModelled(Rule):
    """Arguments that change how the model loads or fits, which servecheck does not model.

    ## What it does
    Lists the launch's arguments whose effect on loading, memory or kernels the prediction does
    not include (arguments that only concern the HTTP server, logging or the tokenizer are
    left out of this list).

    ## Why it matters
    The verdict is for the launch without them; they may change it.
    """

    code = "L003"
    name = "argument-not-modelled"
    severity = Severity.WARNING
    message = "not included in the prediction: {args}"
    fix = "Check these against a real start-up, or leave them out to match the prediction."
    vllm_ref = ARGPARSE


@rule
class LaunchRead(Rule):
    """How the launch was read: the arguments that shape the prediction.

    ## What it does
    Shows the parallel layout and the serving settings taken from the command (with vLLM's
    defaults for the rest), so the prediction can be checked against the command.
    """

    code = "L004"
    name = "launch-read"
    severity = Severity.INFO
    message = "{summary}"
    fix = "Nothing to do."
    vllm_ref = ARGPARSE


@rule
class DerivedMaxLen(Rule):
    """The model's maximum context as vLLM derives it, and the length it will serve.

    ## What it does
    Mirrors vLLM's `_get_and_verify_max_len` for the release: the smallest length key of the
    config, `model_max_length`, the sliding window when disabled, the RoPE factor for the
    types that scale the length (YaRN from `original_max_position_embeddings` up to 0.29;
    YaRN no longer scales it from 0.30), `--hf-overrides`, and
    `VLLM_ALLOW_LONG_MAX_MODEL_LEN`.
    """

    code = "L005"
    name = "derived-max-len"
    severity = Severity.INFO
    message = "max_model_len {value}: the model's maximum is {derived} ({why})"
    fix = "Nothing to do."
    vllm_ref = "vLLM {ver} config/model.py _get_and_verify_max_len"


@rule
class LongMaxLenAllowed(Rule):
    """`--max-model-len` above the model's maximum, let through by VLLM_ALLOW_LONG_MAX_MODEL_LEN.

    ## Why it matters
    vLLM starts, but positions past the trained length give NaNs (RoPE) or out-of-bounds
    errors (absolute positions) once a request reaches them.

    ## Fix
    Configure RoPE scaling (`--hf-overrides` with the model card's `rope_scaling`) instead.
    """

    code = "L006"
    name = "long-max-len-allowed"
    severity = Severity.WARNING
    message = "--max-model-len {max_len} is above the model's {key} = {derived}"
    fix = "Use the model card's RoPE scaling via --hf-overrides, or stay at or below {derived}."
    vllm_ref = "vLLM {ver} config/model.py _get_and_verify_max_len"
    vllm_message = "{vllm_text}"


@rule
class MoreGpusThanGiven(Rule):
    """The launch's parallel layout needs more GPUs than the target has.

    ## Why it matters
    vLLM waits for, or fails to find, the missing devices: tensor x pipeline x data parallel
    GPUs are needed (per node: `--nnodes` spreads them).

    ## Fix
    Pass `--gpus` (and `--nodes`) matching the launch, or shrink the layout.
    """

    code = "L008"
    exception = "RuntimeError"
    name = "more-gpus-than-given"
    severity = Severity.ERROR
    message = "{layout} needs {needed} GPUs; the target has {given}"
    fix = "Use --gpus {needed} (or more nodes), or a smaller -tp/-pp/-dp."
    vllm_ref = "vLLM {ver} config/parallel.py ParallelConfig"


@rule
class ExpertParallelIgnored(Rule):
    """`--enable-expert-parallel` on a model without experts.

    ## Why it matters
    vLLM accepts the flag and serves the model as if it were not there: only MoE layers use
    expert parallelism.
    """

    code = "L009"
    name = "expert-parallel-ignored"
    severity = Severity.INFO
    message = "--enable-expert-parallel has no effect: the model has no MoE layers"
    fix = "Drop --enable-expert-parallel."
    vllm_ref = "vLLM {ver} model_executor/layers/fused_moe/config.py FusedMoEParallelConfig"
