"""V: the vLLM release asked for, against the releases servecheck models."""

from servecheck.findings.registry import Rule, Severity, rule

RELEASES = "vLLM releases, pypi.org/project/vllm/#history"


@rule
class ReleaseTooOld(Rule):
    """The vLLM release is older than every release servecheck models.

    ## Why it matters
    servecheck mirrors vLLM's behaviour release by release from its oldest modelled release
    on. An older release is checked as if it were that release: quantization matching, kernel
    choices and error messages may differ from what the older release does.

    ## Fix
    Upgrade vLLM to a modelled release, or read the results as approximate.
    """

    code = "V001"
    name = "release-not-modelled"
    severity = Severity.WARNING
    message = (
        "vLLM {requested} is older than the releases servecheck models (from {first}): "
        "checked as vLLM {ver}"
    )
    fix = "Upgrade vLLM to {first} or later, or treat the results as approximate."
    vllm_ref = RELEASES


@rule
class ReleaseTooNew(Rule):
    """The vLLM release is newer than the newest release servecheck models.

    ## Why it matters
    A newer release inherits the behaviour of the newest modelled release: anything that
    changed since (new kernels, new checks, new defaults) is not reflected.

    ## Fix
    Update servecheck, or read the results as a prediction for the newest modelled release.
    """

    code = "V002"
    name = "release-newer-than-modelled"
    severity = Severity.WARNING
    message = (
        "vLLM {requested} is newer than the newest release servecheck models ({newest}): "
        "checked as vLLM {ver}"
    )
    fix = "Update servecheck, or treat the results as those of vLLM {newest}."
    vllm_ref = RELEASES


@rule
class ReleaseNotChecked(Rule):
    """The vLLM release is published and known, but its sources have not been checked yet.

    ## Why it matters
    The tables extracted from each release's sources (model registry, `vllm serve` arguments,
    maximum length, quantization methods) follow it exactly. The hand-kept tables (kernel
    candidate lists, MoE backends, attention, the memory model, behaviour that changed
    between releases) hold the values of the newest checked release: whatever this release
    changed there is not reflected.

    ## Fix
    Read the kernel and memory results as those of the newest checked release, or update
    servecheck.
    """

    code = "V003"
    name = "release-not-checked"
    severity = Severity.WARNING
    message = (
        "vLLM {requested}: its model registry and arguments are modelled, but its kernel "
        "selection and memory model are those of vLLM {checked} (not yet checked against "
        "{requested})"
    )
    fix = "Treat kernel and memory results as those of vLLM {checked}, or update servecheck."
    vllm_ref = RELEASES
