"""M: whether the model fits the GPUs: weights, KV cache, start-up memory, context length.

Figures come from servecheck.plan (weights per GPU, vLLM's memory budget, KV capacity); the
quoted texts are what vLLM raises or logs for the release predicted (`vllm_text`).
"""

from servecheck.findings.registry import Rule, Severity, rule

WORKER = "vLLM {ver} v1/worker"


@rule
class WeightsDoNotFit(Rule):
    """The weights of one GPU are larger than the GPU's memory.

    ## What it does
    Adds up the bytes each GPU holds in the layout (sharded by tensor and pipeline
    parallelism, experts split or whole) and compares them with the memory CUDA can give after
    the CUDA context and communicators.

    ## Why it matters
    Loading stops with PyTorch's out-of-memory error. vLLM logs "Failed to load model - not
    enough GPU memory" first.

    ## Example
    GLM-4.5-Air FP8 (about 104 GiB) on one 96 GB RTX PRO 6000.

    ## Fix
    More GPUs (tensor or pipeline parallelism), or a smaller quantization.
    """

    code = "M001"
    exception = "OutOfMemoryError"
    name = "weights-do-not-fit"
    severity = Severity.ERROR
    message = (
        "{layout}: {weights} of weights per GPU, more than the {usable} a {gpu} can give "
        "({total} total)"
    )
    fix = "{suggestion}"
    vllm_ref = WORKER + "/gpu_model_runner.py GPUModelRunner.load_model"
    vllm_message = "{vllm_text}"


@rule
class NoKvCacheMemory(Rule):
    """Nothing is left for the KV cache once weights and activations are counted.

    ## What it does
    Computes vLLM's budget: `total x gpu_memory_utilization - weights - activation peak of the
    profiling run - non-torch memory [- CUDA-graph estimate, 0.21+]`.

    ## Why it matters
    vLLM raises `ValueError` after profiling, when the available KV-cache memory is zero or
    negative.

    ## Fix
    Raise `--gpu-memory-utilization`, lower `--max-num-batched-tokens`/`--max-num-seqs`
    (smaller profiling peak), or use more GPUs.
    """

    code = "M002"
    exception = "ValueError"
    name = "no-kv-cache-memory"
    severity = Severity.ERROR
    message = "{layout}: KV-cache memory would be {available} per GPU ({breakdown})"
    fix = "{suggestion}"
    vllm_ref = "vLLM {ver} v1/core/kv_cache_planning.py _check_enough_kv_cache_memory"
    vllm_message = "{vllm_text}"


@rule
class ContextTooLong(Rule):
    """One request at `max_model_len` needs more KV cache than there is.

    ## Why it matters
    vLLM refuses to start: at least one full-length request must fit. The message gives the
    longest length that would fit.

    ## Example
    DeepSeek-R1-Distill-Qwen-14B on 2x RTX 4090 at its default 131072 tokens (vllm#13061).

    ## Fix
    Pass `--max-model-len` at or below the length servecheck computes, use FP8 KV cache
    (`--kv-cache-dtype fp8`), or more GPUs.
    """

    code = "M003"
    exception = "ValueError"
    name = "context-too-long"
    severity = Severity.ERROR
    message = (
        "{layout}: max_model_len {max_len} needs {needed} of KV cache per GPU, only {available} "
        "is available (longest that fits: {fits_len})"
    )
    fix = "{suggestion}"
    vllm_ref = "{source}"
    vllm_message = "{vllm_text}"


@rule
class FreeMemoryBelowUtilization(Rule):
    """The requested share of GPU memory is more than is free when vLLM starts.

    ## Why it matters
    vLLM compares `total x gpu_memory_utilization` with the free memory after the CUDA
    context and NCCL start and refuses to start when it is larger. With several GPUs per
    process group the communicators take more.

    ## Fix
    Lower `--gpu-memory-utilization` (or free the GPU of other processes).
    """

    code = "M004"
    exception = "ValueError"
    name = "free-memory-below-utilization"
    severity = Severity.ERROR
    message = (
        "{layout}: --gpu-memory-utilization {util} asks for {requested}, about {free} is free "
        "at start-up"
    )
    fix = "Use --gpu-memory-utilization {max_util} or lower."
    vllm_ref = WORKER + "/utils.py request_memory"
    vllm_message = "{vllm_text}"


@rule
class Fits(Rule):
    """The model fits: KV-cache capacity and concurrency at the requested context.

    ## What it does
    Reports the layout servecheck recommends (or the one asked for), the KV-cache tokens per
    GPU and the concurrency vLLM will report at start-up ("GPU KV cache size", "Maximum
    concurrency").
    """

    code = "M005"
    name = "fits"
    severity = Severity.INFO
    message = (
        "{layout} on {gpus}: {weights} weights per GPU, KV cache {kv} = {tokens} tokens, "
        "{concurrency}x concurrency at {max_len} tokens"
    )
    fix = "{command}"
    vllm_ref = "vLLM {ver} v1/core/kv_cache_utils.py (GPU KV cache size / Maximum concurrency)"


@rule
class TightFit(Rule):
    """It fits, with little room: estimation error or another process could tip it over.

    ## Why it matters
    Parts of vLLM's budget are measured at start-up (activation peak, CUDA graphs, non-torch
    memory); servecheck's estimate of them is calibrated on public logs but not exact. A KV
    cache below about 1 GiB, or room for less than two full-length requests, is within that
    error.

    ## Fix
    Leave margin: lower `--max-model-len`, use `--kv-cache-dtype fp8`, or add a GPU.
    """

    code = "M006"
    name = "tight-fit"
    severity = Severity.WARNING
    message = "{layout}: only {kv} of KV cache per GPU ({concurrency}x at {max_len} tokens)"
    fix = "{suggestion}"
    vllm_ref = "vLLM {ver} v1/worker/gpu_worker.py determine_available_memory"


@rule
class MaxLenAboveModel(Rule):
    """`--max-model-len` is larger than the model's own maximum.

    ## Why it matters
    vLLM derives the maximum from `max_position_embeddings` (scaled for some RoPE types) and
    refuses larger values unless `VLLM_ALLOW_LONG_MAX_MODEL_LEN=1`.

    ## Fix
    Use a `--max-model-len` at or below the model's maximum.
    """

    code = "M007"
    exception = "ValueError"
    name = "max-len-above-model"
    severity = Severity.ERROR
    message = "--max-model-len {max_len} exceeds the model's {key} = {derived}"
    fix = "Use --max-model-len {derived} or less."
    vllm_ref = "vLLM {ver} config/model.py _get_and_verify_max_len"
    vllm_message = "{vllm_text}"


@rule
class NoLayoutFits(Rule):
    """No valid parallel layout of the given GPUs holds the model.

    ## Fix
    More GPUs, GPUs with more memory, or a smaller quantization; the plan table shows how far
    each layout is from fitting.
    """

    code = "M008"
    name = "no-layout-fits"
    severity = Severity.ERROR
    message = "none of the valid layouts of {gpus} fits ({closest})"
    fix = "{suggestion}"
    vllm_ref = "vLLM {ver} v1/worker/gpu_worker.py determine_available_memory"


@rule
class PlanEstimated(Rule):
    """Part of the memory plan is estimated rather than computed.

    ## What it does
    Notes which terms of vLLM's budget servecheck calibrated instead of computing: the
    activation peak of the profiling run, non-torch memory and (vLLM 0.21+) the CUDA-graph
    estimate; and, for config-only input, quantized weight bytes.
    """

    code = "M009"
    name = "plan-estimated"
    severity = Severity.INFO
    message = "estimated terms: {terms}"
    fix = "Compare with the 'Available KV cache memory' line of a real start-up."
    vllm_ref = "vLLM {ver} utils/mem_utils.py memory_profiling"


@rule
class CudaGraphCaptureOom(Rule):
    """CUDA-graph capture will run out of memory after the KV cache is allocated.

    ## What it does
    Before vLLM 0.21, CUDA graphs were captured after the KV cache had taken its whole budget,
    out of the memory `--gpu-memory-utilization` leaves free (minus the CUDA context and
    communicators). servecheck compares that room with its estimate of the graphs' memory.

    ## Why it matters
    Start-up fails late, with PyTorch's out-of-memory error inside `capture_model`
    (vllm#17469: Qwen3-30B-A3B on 4x A10 at the default 0.9).

    ## Fix
    Lower `--gpu-memory-utilization` to leave room, or pass `--enforce-eager` (no graphs), or
    use vLLM 0.21+ (which budgets graph memory before sizing the KV cache).
    """

    code = "M010"
    exception = "OutOfMemoryError"
    name = "cuda-graph-capture-oom"
    severity = Severity.ERROR
    message = (
        "{layout}: CUDA graphs need about {graphs} per GPU after the KV cache is allocated; "
        "about {room} is left outside --gpu-memory-utilization {util}"
    )
    fix = "Use --gpu-memory-utilization {max_util} or --enforce-eager."
    vllm_ref = WORKER + "/gpu_model_runner.py GPUModelRunner.capture_model"
    vllm_message = "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate ..."


@rule
class KvCacheBytesDoNotFit(Rule):
    """`--kv-cache-memory-bytes` asks for more KV cache than the GPU has left.

    ## What it does
    With `--kv-cache-memory-bytes`, vLLM skips memory profiling and `--gpu-memory-utilization`
    and allocates exactly that KV cache per GPU. servecheck adds it to the CUDA context and
    communicators, the weights, the profile run's activation peak, non-torch memory and CUDA
    graphs, and compares the sum with the GPU's memory.

    ## Why it matters
    The KV-cache allocation (or CUDA-graph capture after it) fails with PyTorch's out-of-memory
    error.

    ## Fix
    A smaller `--kv-cache-memory-bytes`, or leave it out and let vLLM size the cache.
    """

    code = "M011"
    exception = "OutOfMemoryError"
    name = "kv-cache-bytes-do-not-fit"
    severity = Severity.ERROR
    message = "{layout}: --kv-cache-memory-bytes {kv} brings the GPU to {need} of {total}"
    fix = "Use --kv-cache-memory-bytes of at most about {fits}, or leave it out."
    vllm_ref = WORKER + "/gpu_worker.py Worker.determine_available_memory"
    vllm_message = "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate ..."


@rule
class CpuOffloadCost(Rule):
    """Weights offloaded to CPU memory with `--cpu-offload-gb`, and what that costs.

    ## What it does
    Mirrors vLLM's offloader: decoder layers are moved to pinned CPU memory in order, parameter
    by parameter, until the given GiB per GPU are reached (the last one may overshoot). The
    GPU reads them over PCIe (unified virtual addressing) on every forward pass.

    ## Why it matters
    The model loads, but every step moves the offloaded bytes across PCIe: decoding is bound by
    that transfer (tens of GB per step at tens of GB/s is about a second per token). The host
    needs the offloaded bytes of every GPU in pinned memory.

    ## Fix
    Offload only as much as needed (the plan shows the smallest amount that fits), or add GPUs.
    """

    code = "M012"
    name = "cpu-offload-cost"
    severity = Severity.WARNING
    message = (
        "{layout}: {offloaded} per GPU of weights in CPU memory ({host} pinned host memory in "
        "all); every forward pass reads them over PCIe, about {step} per step at {pcie}"
    )
    fix = "Offload the least that fits ({minimum} here), or use more GPUs."
    vllm_ref = "vLLM {ver} model_executor/offloader/uva.py UVAOffloader"


@rule
class CpuOffloadIgnored(Rule):
    """`--cpu-offload-gb` has no effect: the model runs on a runner that does not offload.

    ## What it does
    From vLLM 0.24 some architectures (0.33: all) run on the V2 GPU model runner. Up to 0.27
    that runner never installs the weight offloader, so `--cpu-offload-gb` is accepted, shown
    among the non-default arguments, and ignored: every weight loads on the GPU.

    ## Why it matters
    A launch that needs the offload to fit runs out of memory while loading.

    ## Fix
    `VLLM_USE_V2_MODEL_RUNNER=0` (the V1 runner offloads), or vLLM 0.28 or later.
    """

    code = "M013"
    name = "cpu-offload-ignored"
    severity = Severity.WARNING
    message = (
        "--cpu-offload-gb {gb} is ignored: vLLM {ver} serves {arch} on the V2 model runner, "
        "which does not offload weights; all {weights} stay on each GPU"
    )
    fix = "Set VLLM_USE_V2_MODEL_RUNNER=0, or use vLLM 0.28 or later."
    vllm_ref = "vLLM {ver} v1/worker/gpu/model_runner.py (no set_offloader)"
