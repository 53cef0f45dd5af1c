"""H: what vLLM decides, or raises, when it picks a kernel for each layer on the target."""

from servecheck.findings.registry import Rule, Severity, rule

LINEAR = "vLLM {ver} model_executor/kernels/linear/__init__.py"
ORACLE = "vLLM {ver} model_executor/layers/fused_moe/oracle"


@rule
class NoLinearKernel(Rule):
    """No linear kernel implements this layer's scheme on the target.

    ## What it does
    Walks vLLM's candidate list for the layer's scheme (CUTLASS, DeepGEMM, FlashInfer,
    Marlin, Machete, Triton, ...) with each kernel's own support checks: compute capability,
    CUDA version of the build, optional packages, environment variables, group sizes and
    partition shapes.

    ## Why it matters
    When no candidate is left vLLM raises `ValueError("Failed to find a kernel that can
    implement the ... linear layer.")` while building the model: the engine never starts.

    ## Example
    A WNA16 checkpoint with `group_size: 256` on an A100: Marlin accepts only -1/32/64/128,
    and Machete, CUTLASS W4A8 and Conch are unavailable there.

    ## Fix
    Use a GPU or a vLLM build that has one of the kernels (the `rejected` reasons say what
    each needed), or re-quantize with a scheme this GPU supports.
    """

    code = "H001"
    exception = "ValueError"
    name = "no-linear-kernel"
    severity = Severity.ERROR
    message = "{module}: no {scheme} linear kernel on {target} ({reasons})"
    fix = "Pick a GPU/build where one of these kernels runs, or re-quantize: {reasons}"
    vllm_ref = LINEAR + " {function}"
    vllm_message = "{vllm_text}"


@rule
class NoMoeBackend(Rule):
    """No fused-MoE backend supports the experts' scheme on the target.

    ## What it does
    Mirrors vLLM's MoE oracles (`select_fp8_moe_backend`, `select_nvfp4_moe_backend`,
    `select_wna16_moe_backend`, ...): the backends in vLLM's priority order, each experts
    class's device, quantization-scheme and activation checks.

    ## Why it matters
    vLLM raises `NotImplementedError("No <X> MoE backend supports the deployment
    configuration.")` while building the first MoE layer.

    ## Example
    FP8 experts with a refined (non-128) block shape on an A100: Marlin needs 128x128
    blocks and Triton FP8 needs sm_89.

    ## Fix
    Use a supported GPU, change the tensor-parallel size (block shapes), or re-quantize.
    """

    code = "H002"
    exception = "NotImplementedError"
    name = "no-moe-backend"
    severity = Severity.ERROR
    message = "{module}: no {scheme} MoE backend on {target} ({reasons})"
    fix = "Pick a GPU/build where one of these backends runs, or re-quantize: {reasons}"
    vllm_ref = ORACLE + "/{oracle}"
    vllm_message = "{vllm_text}"


@rule
class WeightOnlyFallback(Rule):
    """vLLM runs a quantized-activation scheme as weight-only (W8A16 / W4A16) on this GPU.

    ## What it does
    Flags layers whose selected kernel is weight-only (Marlin FP8/FP4, emulation) although
    the checkpoint quantizes activations too: the GPU lacks FP8 (below sm_89) or FP4 (below
    sm_100) tensor cores, or vLLM's candidate order puts Marlin first.

    ## Why it matters
    The model loads and runs, but activations stay in 16 bits: prefill is slower than the
    scheme promises and the speed-up over BF16 shrinks to memory savings. vLLM logs a
    warning at start-up.

    ## Example
    An FP8-dynamic checkpoint on an A100 (sm_80): every FP8 linear runs through Marlin.

    ## Fix
    Expected on older GPUs. For full W8A8/W4A4 speed use sm_89+ (FP8) or sm_100+ (FP4).
    """

    code = "H003"
    name = "weight-only-fallback"
    severity = Severity.WARNING
    message = "{module}: {scheme} runs weight-only via {kernel} on {target}"
    fix = "Expected below {need}; use a GPU with native {fmt} tensor cores for W8A8/W4A4 speed."
    vllm_ref = "vLLM {ver} {source}"
    vllm_message = "{vllm_text}"


@rule
class NoAttentionBackend(Rule):
    """No attention backend accepts this model's attention on the target.

    ## What it does
    Mirrors `get_attn_backend_cls`: the backend priority list for the GPU family and each
    backend's `validate_configuration` (compute capability, head size, KV-cache dtype, MLA).

    ## Why it matters
    vLLM raises `ValueError("No valid attention backend found for cuda ...")`.

    ## Fix
    Use another GPU or KV-cache dtype, or a vLLM release that supports the head size.
    """

    code = "H004"
    exception = "ValueError"
    name = "no-attention-backend"
    severity = Severity.ERROR
    message = "no attention backend for {what} on {target}"
    fix = "Use a supported KV-cache dtype or GPU."
    vllm_ref = "vLLM {ver} platforms/cuda.py get_attn_backend_cls"
    vllm_message = "{vllm_text}"


@rule
class CudaBuildLacksArch(Rule):
    """The vLLM build's CUDA version cannot target this GPU's architecture.

    ## What it does
    Compares the CUDA version of the vLLM/torch build (the official wheel's unless
    `--kernel-env cuda=X.Y` says otherwise) with the oldest and newest CUDA toolkits that
    compile for the GPU's compute capability (knowledge/gpus.toml).

    ## Why it matters
    Without code for the architecture every CUDA kernel fails at the first launch ("no
    kernel image is available for execution on the device"). sm_120 needs CUDA 12.8+;
    CUDA 13 dropped sm_70 (V100).

    ## Fix
    Use a vLLM/torch build for a CUDA version that supports the GPU.
    """

    code = "H005"
    exception = "RuntimeError"
    name = "cuda-build-lacks-arch"
    severity = Severity.ERROR
    message = "{target} ({sm}) needs a CUDA {need} build; vLLM {ver} is built for CUDA {cuda}"
    fix = "Install a vLLM/torch build for CUDA {need}."
    vllm_ref = "knowledge/gpus.toml [[capability]] min_cuda/max_cuda; {env_source}"
    vllm_message = "CUDA error: no kernel image is available for execution on the device"


@rule
class MoeSchemeRejected(Rule):
    """vLLM's MoE method rejects the experts' FP8 scheme before choosing a backend.

    ## Why it matters
    `CompressedTensorsW8A8Fp8MoEMethod` accepts per-tensor (weights and activations),
    channel-weights with dynamic per-token activations, or block weights. Anything else
    fails an assertion or raises `ValueError` while the first MoE layer is built.

    ## Fix
    Re-quantize the experts with one of the accepted FP8 layouts (FP8_DYNAMIC, FP8_BLOCK,
    FP8 per-tensor).
    """

    code = "H006"
    exception = "ValueError"
    name = "moe-scheme-rejected"
    severity = Severity.ERROR
    message = "{module}: {vllm_text}"
    fix = "Re-quantize the experts as FP8 per-tensor, channel/dynamic-token or block."
    vllm_ref = (
        "vLLM {ver} model_executor/layers/quantization/compressed_tensors/"
        "compressed_tensors_moe/compressed_tensors_moe_w8a8_fp8.py"
    )
    vllm_message = "{vllm_text}"


@rule
class ForcedBackendUnsupported(Rule):
    """A backend forced by an environment variable cannot run this layer.

    ## What it does
    Exporting `VLLM_USE_DEEP_GEMM=1` / `VLLM_MOE_USE_DEEP_GEMM=1` makes vLLM use DeepGEMM
    for FP8 MoE or fail (`oracle/fp8.py` `_return_or_raise`), instead of falling through the
    priority list.

    ## Fix
    Unset the variable, or meet the backend's requirements (reason quoted).
    """

    code = "H007"
    exception = "ValueError"
    name = "forced-backend-unsupported"
    severity = Severity.ERROR
    message = "{module}: forced backend {backend} cannot run here ({reason})"
    fix = "Unset the environment variable that forces {backend}."
    vllm_ref = ORACLE + "/fp8.py select_fp8_moe_backend"
    vllm_message = "{vllm_text}"


@rule
class EmulationFallback(Rule):
    """vLLM emulates the scheme (dequantize to BF16) because no native kernel is available.

    ## Why it matters
    The model runs, but every GEMM first dequantizes the weights: much slower than BF16.

    ## Fix
    Use a GPU with a native kernel for the format (FP4: sm_100+ or Marlin on sm_75+).
    """

    code = "H008"
    name = "emulation-fallback"
    severity = Severity.WARNING
    message = "{module}: {scheme} falls back to emulation ({kernel}) on {target}"
    fix = "Use a GPU with a native {scheme} kernel."
    vllm_ref = "vLLM {ver} {source}"
    vllm_message = "{vllm_text}"


@rule
class KernelNotModelled(Rule):
    """servecheck does not model which kernel or backend vLLM picks for these modules here.

    ## Why it matters
    The scheme was resolved, but whether vLLM has a kernel for it on this target (and which)
    is not known to servecheck, so it cannot say the checkpoint runs there. The verdict is at
    least a warning rather than a silent OK.

    ## Fix
    Try a real load on the target before relying on the checkpoint there.
    """

    code = "H009"
    name = "kernel-not-modelled"
    severity = Severity.WARNING
    message = "{what} on {target}: kernel selection is not modelled for {scheme}"
    fix = "Run the checkpoint once on the target (e.g. servecheck smoke) before relying on it."
    vllm_ref = "vLLM {ver} {source}"


@rule
class CpuKernelShape(Rule):
    """vLLM's CPU build has no kernel code for a layer shape of this model.

    ## What it does
    Compares each attention layer's head size with the sizes vLLM's CPU attention kernel is
    compiled for (knowledge/cpu_attention.toml, read from each release's cpu_attn.py), and each
    gated-delta-net layer's key/value head dims with what the CPU chunk kernel accepts.

    ## Why it matters
    vLLM picks its CPU attention backend without checking the head size: the model loads, then
    the first request fails with `RuntimeError: Unsupported CPU attention configuration:
    head_dim=...` (or the GDN kernel's `expect head_dim to be multiples of 32`).

    ## Example
    A tiny test model with head_dim 16, or Gemma 4's 512-wide global heads before vLLM 0.20.

    ## Fix
    Serve on a GPU, use a vLLM release whose CPU kernels cover the size, or a model whose heads
    have a supported size.
    """

    code = "H010"
    exception = "RuntimeError"
    name = "cpu-kernel-shape"
    severity = Severity.ERROR
    message = "{what}: vLLM's CPU build has no kernel for {shape} on {target} ({detail})"
    fix = "Serve on a GPU or a vLLM release whose CPU kernels take {shape} ({supported})."
    vllm_ref = "vLLM {ver} {source}"
    vllm_message = "{vllm_text}"
