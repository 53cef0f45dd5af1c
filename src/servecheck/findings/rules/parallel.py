"""P: parallel layouts (tensor, pipeline, expert parallelism) that vLLM rejects or degrades.

Every rule quotes the text vLLM raises; `vllm_text` is filled by servecheck.plan.layouts for the
release being predicted.
"""

from servecheck.findings.registry import Rule, Severity, rule

LAYERS = "vLLM {ver} model_executor/layers"


@rule
class HeadsNotDivisible(Rule):
    """The attention heads cannot be split evenly across the tensor-parallel ranks.

    ## What it does
    Checks `num_attention_heads % tensor_parallel_size`.

    ## Why it matters
    vLLM shards query heads across TP ranks and refuses the configuration before loading.

    ## Example
    GLM-4.5-Air has 96 heads: TP 1, 2, 3, 4, 6 and 8 pass this check; TP 5 and 7 do not.

    ## Fix
    Use a tensor-parallel size that divides the head count; add pipeline parallelism to use
    more GPUs.
    """

    code = "P001"
    name = "heads-not-divisible-by-tp"
    severity = Severity.ERROR
    message = "{heads} attention heads cannot be split over tensor-parallel size {tp}"
    fix = "Use --tensor-parallel-size in {valid}; combine with --pipeline-parallel-size."
    vllm_ref = "vLLM {ver} config/model.py ModelConfig.verify_with_parallel_config"
    vllm_message = "{vllm_text}"


@rule
class KvHeadsVsTp(Rule):
    """The KV heads neither divide nor are divided by the tensor-parallel size.

    ## Why it matters
    vLLM's `QKVParallelLinear` splits KV heads across ranks when TP is smaller than their
    count and replicates one KV head on `TP / kv_heads` ranks when it is larger; both need one
    number to divide the other (`divide()` asserts).

    ## Example
    8 KV heads with TP 3 or 6 or 12.

    ## Fix
    Pick a TP size that divides the KV-head count or is a multiple of it.
    """

    code = "P002"
    name = "kv-heads-vs-tp"
    severity = Severity.ERROR
    message = "{kv_heads} KV heads and tensor-parallel size {tp}: neither divides the other"
    fix = "Use --tensor-parallel-size in {valid}."
    vllm_ref = LAYERS + "/linear.py QKVParallelLinear.__init__ (distributed/utils.py divide)"
    vllm_message = "AssertionError: {vllm_text}"


@rule
class VocabNotDivisible(Rule):
    """The padded vocabulary cannot be split evenly across the tensor-parallel ranks.

    ## Why it matters
    vLLM pads the vocabulary to a multiple of 64 and divides it by the TP size for the
    embedding and `lm_head`; a TP size that does not divide it (3, 5, 6, ...) fails an assertion
    while building the model.

    ## Fix
    Use a power-of-two tensor-parallel size.
    """

    code = "P003"
    name = "vocab-not-divisible-by-tp"
    severity = Severity.ERROR
    message = "padded vocabulary {padded} is not divisible by tensor-parallel size {tp}"
    fix = "Use --tensor-parallel-size in {valid}."
    vllm_ref = LAYERS + "/vocab_parallel_embedding.py VocabParallelEmbedding.__init__"
    vllm_message = "AssertionError: {vllm_text}"


@rule
class DenseFp8BlockVsTp(Rule):
    """A block-FP8 linear layer's shard is not a whole number of 128-wide blocks.

    ## What it does
    For block-quantized FP8 checkpoints (`weight_block_size` / compressed-tensors `block`
    strategy), checks every column-parallel output shard and row-parallel input shard per rank
    against the block size.

    ## Why it matters
    The block scales cannot be sharded with the weights, and vLLM raises `ValueError` in
    `validate_fp8_block_shape` while creating the layer.

    ## Example
    A dense MLP with intermediate 10944 at TP 2 gives 5472 columns per rank: not a multiple
    of 128.

    ## Fix
    Use a smaller tensor-parallel size (pipeline parallelism for more GPUs).
    """

    code = "P004"
    name = "dense-fp8-block-vs-tp"
    severity = Severity.ERROR
    message = (
        "{module}: {what} per rank = {size} is not a multiple of the FP8 block {block} at TP {tp}"
    )
    fix = "Use --tensor-parallel-size in {valid}, and --pipeline-parallel-size for more GPUs."
    vllm_ref = LAYERS + "/quantization/utils/fp8_utils.py validate_fp8_block_shape"
    vllm_message = "{vllm_text}"


@rule
class MoeFp8BlockVsTp(Rule):
    """The routed experts' intermediate size per rank is not a whole number of FP8 blocks.

    ## What it does
    Without expert parallelism every rank holds every expert with `moe_intermediate_size / TP`
    columns. For block-FP8 experts that width must be a multiple of the block (128).

    ## Why it matters
    vLLM raises `ValueError` in `validate_fp8_block_shape_moe`. Compressed-tensors block-FP8
    MoE always checks; vLLM 0.33's plain `fp8` method first tries to refine the scales to a
    finer block (at least 32) that only the Triton MoE kernel runs, and raises only when that
    is impossible.

    ## Example
    GLM-4.5-Air's experts are 1408 wide (11 blocks of 128): block-FP8 allows TP 1 only, unless
    `--enable-expert-parallel` keeps each expert whole.

    ## Fix
    Enable expert parallelism, or use a tensor-parallel size that keeps whole blocks.
    """

    code = "P005"
    name = "moe-fp8-block-vs-tp"
    severity = Severity.ERROR
    message = (
        "{module}: expert intermediate per rank = {size} is not a multiple of the FP8 block "
        "{block} at TP {tp}"
    )
    fix = "Add --enable-expert-parallel, or use --tensor-parallel-size in {valid}."
    vllm_ref = LAYERS + "/quantization/utils/fp8_utils.py validate_fp8_block_shape_moe"
    vllm_message = "{vllm_text}"


@rule
class MoeFp8BlockRefined(Rule):
    """vLLM refines the experts' FP8 block scales to fit the TP shard; only Triton runs them.

    ## What it does
    vLLM 0.33's plain `fp8` MoE method upsamples the checkpoint's 128x128 block scales to a
    finer block r x r (r = gcd(128, intermediate per rank, hidden) >= 32) when the shard is not
    a whole number of blocks.

    ## Why it matters
    Only the Triton fused-MoE kernel accepts the refined block, which needs FP8 support
    (sm_89+); below that no FP8 MoE backend remains. On newer GPUs it loads, without the
    faster DeepGEMM/CUTLASS/FlashInfer kernels.

    ## Fix
    Enable expert parallelism or pick a TP size that keeps whole 128 blocks for the fast paths.
    """

    code = "P006"
    name = "moe-fp8-block-refined"
    severity = Severity.INFO
    message = (
        "{module}: expert intermediate per rank {size} at TP {tp}: block scales refined to "
        "{refined}x{refined}, Triton MoE only"
    )
    fix = "Add --enable-expert-parallel, or use --tensor-parallel-size in {valid}."
    vllm_ref = (
        "vLLM {ver} model_executor/layers/fused_moe/oracle/fp8.py "
        "resolve_fp8_moe_weight_block_shape"
    )
    vllm_message = "{vllm_text}"


@rule
class GroupSizeVsTp(Rule):
    """A weight-only (WNA16) layer's shard is not a whole number of quantization groups.

    ## Why it matters
    With group-wise scales, a row-parallel layer (`down_proj`, `o_proj`) or the experts'
    intermediate dimension must split into whole groups per rank; vLLM raises `ValueError`.

    ## Example
    `intermediate_size` 11008 with group size 128 at TP 8 leaves 1376 columns per rank: 10.75
    groups.

    ## Fix
    Use a smaller TP size, or (MoE) enable expert parallelism.
    """

    code = "P007"
    name = "group-size-vs-tp"
    severity = Severity.ERROR
    message = (
        "{module}: {size} input columns per rank is not a multiple of group size {group} at TP {tp}"
    )
    fix = "Use --tensor-parallel-size in {valid}."
    vllm_ref = "vLLM {ver} {source}"
    vllm_message = "{vllm_text}"


@rule
class MarlinTileVsTp(Rule):
    """A layer's shard is too narrow for the Marlin kernel tiles used below sm_89.

    ## What it does
    GPUs without FP8 tensor cores (below sm_89) run FP8 checkpoints through the Marlin
    weight-only kernel, which needs the output per rank to be a multiple of 64 and the input
    per rank a multiple of 128 (`GPTQ_MARLIN_MIN_THREAD_N`/`_K`). vLLM 0.24 and later pad such
    shapes (`marlin_padded_nk`); 0.11 does not.

    ## Fix
    Use a smaller TP size, a newer vLLM, or a GPU with FP8 support.
    """

    code = "P008"
    name = "marlin-tile-vs-tp"
    severity = Severity.ERROR
    message = "{module}: {what} per rank = {size} is not a multiple of Marlin's {tile} at TP {tp}"
    fix = "Use --tensor-parallel-size in {valid}, or vLLM 0.24+ (which pads Marlin tiles)."
    vllm_ref = LAYERS + "/quantization/utils/marlin_utils.py verify_marlin_supports_shape"
    vllm_message = "{vllm_text}"


@rule
class ExpertParallelWithoutExperts(Rule):
    """Expert parallelism was asked for a model without routed experts.

    ## Fix
    Drop `--enable-expert-parallel`.
    """

    code = "P009"
    name = "ep-without-experts"
    severity = Severity.ERROR
    message = "--enable-expert-parallel on a dense model"
    fix = "Drop --enable-expert-parallel."
    vllm_ref = "vLLM {ver} config/model.py ModelConfig._verify_with_expert_parallelism"
    vllm_message = (
        "Number of experts in the model must be greater than 0 when expert parallelism is enabled."
    )


@rule
class ExpertsUneven(Rule):
    """The routed experts do not divide evenly over the expert-parallel ranks.

    ## Why it matters
    vLLM gives the first `E % EP` ranks one expert more (`determine_expert_map`): those ranks
    hold more weights and the memory plan is set by them. With more ranks than experts some
    ranks would hold none.

    ## Fix
    Use an expert-parallel size (TP x DP) that divides the expert count.
    """

    code = "P010"
    name = "experts-uneven-over-ep"
    severity = Severity.WARNING
    message = "{experts} experts over {ep} expert-parallel ranks: {detail}"
    fix = "Use a parallel size that divides {experts}."
    vllm_ref = LAYERS + "/fused_moe/expert_map_manager.py determine_expert_map"


@rule
class IntermediateNotDivisible(Rule):
    """A dense layer's width does not divide by the tensor-parallel size.

    ## Why it matters
    Column- and row-parallel layers divide their width by the TP size with `divide()`, which
    asserts.

    ## Fix
    Use a tensor-parallel size that divides it.
    """

    code = "P011"
    name = "width-not-divisible-by-tp"
    severity = Severity.ERROR
    message = "{module}: width {width} is not divisible by tensor-parallel size {tp}"
    fix = "Use --tensor-parallel-size in {valid}."
    vllm_ref = LAYERS + "/linear.py ColumnParallelLinear / RowParallelLinear (divide)"
    vllm_message = "AssertionError: {vllm_text}"


@rule
class PipelineTooDeep(Rule):
    """More pipeline stages than decoder layers.

    ## Fix
    Use at most as many pipeline stages as the model has layers.
    """

    code = "P012"
    name = "pp-exceeds-layers"
    severity = Severity.ERROR
    message = "pipeline-parallel size {pp} exceeds the {layers} decoder layers"
    fix = "Use --pipeline-parallel-size <= {layers}."
    vllm_ref = "vLLM {ver} distributed/utils.py get_pp_indices"


@rule
class TensorParallelAcrossNodes(Rule):
    """Tensor parallelism spans nodes.

    ## Why it matters
    Every layer all-reduces across the TP group; across a network link that is many times
    slower than NVLink. vLLM's guidance is TP within a node and PP across nodes.

    ## Fix
    Set `--tensor-parallel-size` to the GPUs per node and `--pipeline-parallel-size` to the
    number of nodes.
    """

    code = "P013"
    name = "tp-across-nodes"
    severity = Severity.WARNING
    message = "tensor-parallel size {tp} is larger than the {per_node} GPUs of one node"
    fix = "Use --tensor-parallel-size {per_node} --pipeline-parallel-size {nodes}."
    vllm_ref = "vLLM {ver} docs: serving/parallelism_scaling (multi-node: TP per node, PP across)"


@rule
class NoValidLayout(Rule):
    """No tensor/pipeline/expert-parallel layout of the given GPUs passes vLLM's checks.

    ## Fix
    Change the GPU count (the findings of each layout say what fails), or re-quantize with a
    format whose block or group size fits the shards.
    """

    code = "P014"
    name = "no-valid-layout"
    severity = Severity.ERROR
    message = "no parallel layout of {gpus} GPU(s) passes vLLM's checks ({detail})"
    fix = "Try another GPU count; `servecheck plan` lists what fails for each layout."
    vllm_ref = "vLLM {ver} (see the layout findings)"
