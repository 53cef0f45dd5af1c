"""Parallel layouts (tensor x pipeline, expert parallelism on or off) and vLLM's checks on them.

Each check mirrors one place where vLLM raises while building the model for a layout; the
finding quotes vLLM's text for the release predicted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from servecheck.findings.registry import Finding
from servecheck.findings.rules import parallel as rules
from servecheck.model.config import ModelConfig
from servecheck.model.inventory import EXPERTS, Inventory, Module
from servecheck.quant.resolve import Resolution, ResolutionResult
from servecheck.quant.spec import QuantSpec
from servecheck.versions import VllmVersion

VOCAB_PADDING = 64  # vLLM 0.33 vocab_parallel_embedding.py DEFAULT_VOCAB_PADDING_SIZE
MARLIN_MIN_N, MARLIN_MIN_K = 64, 128  # vLLM 0.33 marlin_utils.py GPTQ_MARLIN_MIN_THREAD_N/K
REFINE_MIN = 32  # vLLM 0.33 fused_moe/oracle/fp8.py refine_fp8_moe_block_shape (refine >= 32)
FP8_MIN_CAPABILITY = 89  # vLLM 0.33 platforms/cuda.py supports_fp8 (Triton FP8 MoE needs it)


@dataclass(frozen=True, order=True)
class Layout:
    """One way of spreading the model over GPUs: `dp` replicas of tensor x pipeline parallelism,
    MoE experts split (expert parallelism) or sharded over all tp x dp GPUs of a stage."""

    tp: int
    pp: int = 1
    ep: bool = False
    gpus_per_node: int = 0  # 0 = unknown / single node
    dp: int = 1

    @property
    def world(self) -> int:
        return self.tp * self.pp * self.dp

    @property
    def replica_gpus(self) -> int:
        """GPUs of one replica (one engine): tensor x pipeline."""
        return self.tp * self.pp

    @property
    def moe_tp(self) -> int:
        # vLLM 0.33 fused_moe/config.py FusedMoEParallelConfig.make: without expert parallelism
        # the MoE layers shard over tp x dp (flatten_tp_across_dp_and_pcp)
        return 1 if self.ep else self.tp * self.dp

    @property
    def ep_size(self) -> int:
        # vLLM 0.33 fused_moe/config.py FusedMoEParallelConfig.make: ep_size = tp x dp
        return self.tp * self.dp if self.ep else 1

    @property
    def nodes(self) -> int:
        if not self.gpus_per_node:
            return 1
        return max(1, math.ceil(self.world / self.gpus_per_node))

    @property
    def label(self) -> str:
        parts = [f"TP{self.tp}"] if self.tp > 1 or (self.pp == 1 and self.dp == 1) else []
        if self.pp > 1:
            parts.append(f"PP{self.pp}")
        if self.dp > 1:
            parts.insert(0, f"DP{self.dp}")
        text = "×".join(parts)
        if self.ep:
            text += "+EP"
        return text


def pp_partition(num_layers: int, pp: int) -> list[tuple[int, int]]:
    """[start, end) decoder layers of each pipeline stage.

    vLLM 0.33 distributed/utils.py get_pp_indices (without VLLM_PP_LAYER_PARTITION): equal
    parts, the remainder added one each to the stages before the last.
    """
    per = num_layers // pp
    parts = [per] * pp
    remaining = num_layers % pp
    for i in range(2, remaining + 2):
        parts[-i] += 1
    out, start = [], 0
    for n in parts:
        out.append((start, start + n))
        start += n
    return out


def enumerate_layouts(
    gpus_per_node: int, nodes: int, is_moe: bool, data_parallel: bool = True
) -> list[Layout]:
    """Layouts using a whole node's divisors or whole nodes; TP stays within a node; data
    parallel replicas of any TP x PP that divides the count."""
    total = gpus_per_node * nodes
    counts = {c for c in range(1, gpus_per_node + 1) if gpus_per_node % c == 0}
    counts |= {gpus_per_node * k for k in range(1, nodes + 1)}
    out = []
    for count in sorted(counts):
        if count > total:
            continue
        for dp in range(1, count + 1) if data_parallel else (1,):
            if count % dp:
                continue
            per_replica = count // dp
            for tp in range(1, min(per_replica, gpus_per_node) + 1):
                if per_replica % tp:
                    continue
                pp = per_replica // tp
                for ep in (False, True) if is_moe else (False,):
                    if ep and tp * dp == 1:
                        continue  # EP of size 1 is no expert parallelism
                    out.append(Layout(tp=tp, pp=pp, ep=ep, gpus_per_node=gpus_per_node, dp=dp))
    return out


@dataclass(frozen=True)
class LayoutContext:
    cfg: ModelConfig
    inventory: Inventory
    resolution: ResolutionResult
    quant: QuantSpec
    version: VllmVersion
    capability: int | None


def valid_tp_sizes(ctx: LayoutContext, limit: int = 16, ep: bool = False) -> list[int]:
    """TP sizes up to `limit` that pass every check (for fix texts); worked out once per
    context, so planning many GPUs does not repeat it for every failing layout."""
    cache = ctx.__dict__.setdefault("_valid_tp", {})
    if (limit, ep) not in cache:
        out = []
        for tp in range(1, limit + 1):
            probs = check_layout(Layout(tp=tp, ep=ep), ctx, for_valid=True)
            if not any(p.severity.rank == 0 for p in probs):
                out.append(tp)
        cache[limit, ep] = out
    return list(cache[limit, ep])


def check_layout(layout: Layout, ctx: LayoutContext, for_valid: bool = False) -> list[Finding]:
    """Every problem vLLM would raise (or warn about) for this layout."""
    checker = _Checker(layout, ctx, for_valid)
    checker.run()
    return checker.out


class _Checker:
    def __init__(self, layout: Layout, ctx: LayoutContext, for_valid: bool):
        self.layout = layout
        self.ctx = ctx
        self.cfg = ctx.cfg
        self.ver = ctx.version.effective
        self.tp = layout.tp
        self.out: list[Finding] = []
        self.for_valid = for_valid
        self._valid: str | None = None
        self._seen: set[tuple[str, str]] = set()

    def valid(self, ep: bool | None = None) -> str:
        if self.for_valid:
            return "-"
        if self._valid is None:
            sizes = valid_tp_sizes(self.ctx, ep=self.layout.ep if ep is None else ep)
            self._valid = ", ".join(str(s) for s in sizes) or "none up to 16"
        return self._valid

    def add(self, rule: type[rules.Rule], subject: str, key: str, **fields) -> None:
        if (rule.code, key) in self._seen:
            return  # one finding per rule and kind of layer; the first layer is the example
        self._seen.add((rule.code, key))
        fields.setdefault("ver", self.ver)
        fields.setdefault("tp", self.tp)
        if "{valid}" in rule.fix and "valid" not in fields:
            fields["valid"] = self.valid()
        self.out.append(rule.make([subject], **fields))

    def add_for_module(self, rule: type[rules.Rule], m: Module, **fields) -> None:
        """A per-layer finding: one per rule and kind of layer, `m` as the example."""
        self.add(rule, m.name, m.kind, module=m.name, **fields)

    def run(self) -> None:
        cfg, lay = self.cfg, self.layout
        if lay.pp > cfg.num_layers:
            self.add(rules.PipelineTooDeep, "pipeline", "pp", pp=lay.pp, layers=cfg.num_layers)
        if lay.gpus_per_node and lay.tp > lay.gpus_per_node:
            self.add(
                rules.TensorParallelAcrossNodes,
                "tensor-parallel",
                "tp",
                per_node=lay.gpus_per_node,
                nodes=lay.nodes,
            )
        if lay.ep and not cfg.is_moe:
            self.add(rules.ExpertParallelWithoutExperts, "experts", "ep")
        self.heads()
        self.vocab()
        self.experts_over_ep()
        by_res = self.ctx.resolution.by_name()
        for m in self.ctx.inventory.modules:
            res = by_res.get(m.name)
            if res is None:
                continue
            if m.kind == EXPERTS:
                self.experts(m, res)
            elif m.is_linear and m.tp_split in ("column", "row", "qkv"):
                self.linear(m, res)

    # -- model-wide checks --

    def heads(self) -> None:
        cfg, tp = self.cfg, self.tp
        if cfg.num_heads % tp:
            self.add(
                rules.HeadsNotDivisible,
                "attention",
                "heads",
                heads=cfg.num_heads,
                vllm_text=(
                    f"Total number of attention heads ({cfg.num_heads}) must be divisible by "
                    f"tensor parallel size ({tp})."
                ),
            )
        if cfg.is_mla:
            return  # MLA has no separate KV heads to split
        kv = cfg.num_kv_heads
        if kv <= 0:
            return  # no attention heads in the config (a Mamba-only model)
        a, b = (tp, kv) if tp >= kv else (kv, tp)
        if a % b:
            self.add(
                rules.KvHeadsVsTp,
                "attention",
                "kv",
                kv_heads=kv,
                vllm_text=f"{a} is not divisible by {b}",
            )

    def vocab(self) -> None:
        padded = -(-self.cfg.vocab_size // VOCAB_PADDING) * VOCAB_PADDING
        if padded % self.tp:
            self.add(
                rules.VocabNotDivisible,
                "embedding",
                "vocab",
                padded=padded,
                vllm_text=f"{padded} is not divisible by {self.tp}",
            )

    def experts_over_ep(self) -> None:
        if not (self.layout.ep and self.cfg.is_moe):
            return
        e, ep = self.cfg.num_experts, self.layout.ep_size
        if e % ep == 0:
            return
        if ep > e:
            detail = f"{ep - e} rank(s) would hold no expert"
        else:
            detail = f"{e % ep} rank(s) hold {e // ep + 1} experts, the others {e // ep}"
        self.add(rules.ExpertsUneven, "experts", "ep", experts=e, ep=ep, detail=detail)

    # -- per-layer checks --

    def linear(self, m: Module, res: Resolution) -> None:
        tp = self.tp
        # Shapes per rank (vLLM 0.33 linear.py: divide() for every partition).
        if m.tp_split == "row":
            if m.in_features % tp:
                self._width_not_divisible(m, m.in_features)
                return
            in_rank = m.in_features // tp
            outs_rank = [s.out_features for s in m.shards]
        elif m.tp_split == "qkv":
            in_rank = m.in_features
            outs_rank = self._qkv_shards(m)
            if outs_rank is None:
                return
        else:
            bad = [s.out_features for s in m.shards if s.out_features % tp]
            if bad:
                self._width_not_divisible(m, bad[0])
                return
            in_rank = m.in_features
            outs_rank = [s.out_features // tp for s in m.shards]
        block = self._fp8_block(res)
        if block is not None:
            self._dense_fp8_block(m, block, in_rank, outs_rank)
        if self._is_wna16_group(res) and m.tp_split == "row" and tp > 1:
            group = self._group_size(res)
            if group and in_rank % group:
                self._group(m, in_rank, group)
        if self._marlin_fp8(res):
            self._marlin_tiles(m, in_rank, outs_rank)

    def _width_not_divisible(self, m: Module, width: int) -> None:
        # vLLM 0.33 distributed/utils.py divide -> ensure_divisibility
        self.add_for_module(
            rules.IntermediateNotDivisible,
            m,
            width=width,
            vllm_text=f"{width} is not divisible by {self.tp}",
        )

    def _qkv_shards(self, m: Module) -> list[int] | None:
        tp, cfg = self.tp, self.cfg
        if len(m.shards) != 3 or cfg.num_heads % tp:
            return None
        kv = cfg.num_kv_heads
        if kv <= 0 or (tp >= kv and tp % kv) or (tp < kv and kv % tp):
            return None
        q = m.shards[0].out_features // tp
        kv_rank = max(1, kv // tp)
        head_dim = m.shards[1].out_features // max(kv, 1)
        return [q, kv_rank * head_dim, kv_rank * head_dim]

    def _fp8_block(self, res: Resolution) -> tuple[int, int] | None:
        if res.scheme == "Fp8" and res.block_size:
            return res.block_size
        w = res.weights
        if (
            res.scheme in ("W8A8Fp8", "W8A16Fp8")
            and w is not None
            and w.strategy == "block"
            and w.block_structure
        ):
            return (int(w.block_structure[0]), int(w.block_structure[1]))
        return None

    def _dense_fp8_block(
        self, m: Module, block: tuple[int, int], in_rank: int, outs_rank: list[int]
    ) -> None:
        # vLLM 0.33 fp8_utils.py validate_fp8_block_shape
        bn, bk = block
        tp = self.tp
        if tp > 1 and m.tp_split == "row" and in_rank % bk:
            self.add_for_module(
                rules.DenseFp8BlockVsTp,
                m,
                what="input",
                size=in_rank,
                block=bk,
                vllm_text=(
                    f"Weight input_size_per_partition = {in_rank} is not divisible by weight "
                    f"quantization block_k = {bk}."
                ),
            )
        is_tp_split = tp > 1 and m.tp_split in ("column", "qkv")
        merged = len(outs_rank) > 1 and m.tp_split != "row"
        if is_tp_split or merged:
            sizes = outs_rank if is_tp_split else outs_rank[:-1]
            for size in sizes:
                if size % bn:
                    self.add_for_module(
                        rules.DenseFp8BlockVsTp,
                        m,
                        what="output",
                        size=size,
                        block=bn,
                        vllm_text=(
                            f"Weight output_partition_size = {size} is not divisible by weight "
                            f"quantization block_n = {bn}."
                        ),
                    )
                    break

    def _is_wna16_group(self, res: Resolution) -> bool:
        w = res.weights
        if res.scheme == "WNA16" and w is not None:
            return w.strategy == "group" and w.actorder != "group"
        return False

    def _group_size(self, res: Resolution) -> int | None:
        w = res.weights
        return int(w.group_size) if w is not None and w.group_size else None

    def _group(self, m: Module, in_rank: int, group: int) -> None:
        style = self.ctx.version.feature("wna16_group_message")
        if style == "partition":
            text = (
                f"Weight input_size_per_partition={in_rank} for layer '{m.name}' is not "
                f"divisible by group_size={group}. This happens when tensor_parallel_size "
                "splits the layer input into shards that are not a whole number of quant "
                "groups. Consider reducing tensor_parallel_size."
            )
            source = "distributed/utils.py verify_group_size_divides_partition"
        else:
            text = (
                "Failed to find a kernel that can implement the WNA16 linear layer. Reasons: "
                f"... Weight input_size_per_partition = {in_rank} is not divisible by "
                f"group_size = {group}. Consider reducing tensor_parallel_size or running with "
                "--quantization gptq."
            )
            source = "model_executor/layers/quantization/utils/marlin_utils.py"
        self.add_for_module(
            rules.GroupSizeVsTp,
            m,
            size=in_rank,
            group=group,
            source=source,
            vllm_text=text,
        )

    def _marlin_fp8(self, res: Resolution) -> bool:
        cap = self.ctx.capability
        if cap is None or cap >= FP8_MIN_CAPABILITY:
            return False
        if res.scheme not in ("W8A8Fp8", "W8A16Fp8", "Fp8"):
            return False
        return not self.ctx.version.feature("marlin_fp8_tile_padding")

    def _marlin_tiles(self, m: Module, in_rank: int, outs_rank: list[int]) -> None:
        out_rank = sum(outs_rank)
        if out_rank % MARLIN_MIN_N:
            what, size, tile = "output", out_rank, f"min_thread_n = {MARLIN_MIN_N}"
        elif in_rank % MARLIN_MIN_K:
            what, size, tile = "input", in_rank, f"min_thread_k = {MARLIN_MIN_K}"
        else:
            return
        self.add_for_module(
            rules.MarlinTileVsTp,
            m,
            what=what,
            size=size,
            tile=tile,
            vllm_text=(
                f"Weight {what}_size_per_partition = {size} is not divisible by  {tile}. "
                "Consider reducing tensor_parallel_size or running with --quantization gptq."
            ),
        )

    def experts(self, m: Module, res: Resolution) -> None:
        if m.experts is None or res.scheme is None:
            return
        inter = m.experts.intermediate_size
        # vLLM 0.33 fused_moe/config.py: intermediate_size_per_partition = I // tp_size, with
        # the MoE tp_size 1 under expert parallelism (experts stay whole).
        ispp = inter // self.layout.moe_tp
        block = self._fp8_block(res)
        if block is not None:
            self._moe_fp8_block(m, res, block, ispp)
        if self._is_wna16_group(res) and self.ctx.version.feature("wna16_moe_group_check"):
            group = self._group_size(res)
            if group and ispp % group:
                self.add_for_module(
                    rules.GroupSizeVsTp,
                    m,
                    size=ispp,
                    group=group,
                    source=(
                        "model_executor/layers/quantization/compressed_tensors/"
                        "compressed_tensors_moe/compressed_tensors_moe_wna16.py"
                    ),
                    vllm_text=(
                        "CompressedTensors WNA16 MoE with static group scales requires the MoE "
                        f"intermediate size per tensor-parallel partition ({ispp}) to be "
                        f"divisible by group_size ({group}). Scale groups would otherwise "
                        "cross TP shard boundaries; use a compatible TP size or enable expert "
                        "parallelism."
                    ),
                )

    def _moe_fp8_block(self, m: Module, res: Resolution, block: tuple[int, int], ispp: int) -> None:
        bn, bk = block
        tp = self.layout.moe_tp
        bad_n = ispp % bn != 0
        bad_k = tp > 1 and ispp % bk != 0
        if not (bad_n or bad_k):
            return
        plain_fp8 = res.scheme == "Fp8"
        if plain_fp8 and self.ctx.version.feature("fp8_moe_block_refine") and not self.layout.ep:
            refine = math.gcd(bn, bk, ispp, m.experts.hidden_size if m.experts else 0)
            if refine >= REFINE_MIN:
                cap = self.ctx.capability
                if cap is not None and cap < FP8_MIN_CAPABILITY:
                    self.add_for_module(
                        rules.MoeFp8BlockVsTp,
                        m,
                        size=ispp,
                        block=bn,
                        vllm_text="No FP8 MoE backend supports the deployment configuration.",
                    )
                    return
                self.add_for_module(
                    rules.MoeFp8BlockRefined,
                    m,
                    size=ispp,
                    refined=refine,
                    vllm_text=(
                        f"FP8 MoE block scales refined from [{bn}, {bk}] to [{refine}, {refine}] "
                        f"to fit the TP-sharded intermediate size {ispp}."
                    ),
                )
                return
        if bad_n:
            text = (
                f"The output_size of gate's and up's weight = {ispp} is not divisible by "
                f"weight quantization block_n = {bn}."
            )
        else:
            text = (
                f"The input_size of down's weight = {ispp} is not divisible by weight "
                f"quantization block_k = {bk}."
            )
        self.add_for_module(
            rules.MoeFp8BlockVsTp,
            m,
            size=ispp,
            block=bn,
            vllm_text=text,
        )


def moe_fp8_tp_table(ctx: LayoutContext, sizes: tuple[int, ...] = (1, 2, 4, 8)) -> list[dict]:
    """For MoE models: which TP sizes the experts allow under block-FP8 and per-channel FP8.

    Computed for the model's own expert width whatever its checkpoint format, so a plan can say
    what a block-FP8 re-quantization would allow.
    """
    cfg = ctx.cfg
    if not cfg.is_moe:
        return []
    inter = cfg.moe_intermediate_size or cfg.intermediate_size
    refine = ctx.version.feature("fp8_moe_block_refine")
    rows = []
    for tp in sizes:
        ispp = inter // tp
        whole = ispp % 128 == 0
        refined = math.gcd(128, ispp, cfg.hidden_size) if not whole else 128
        rows.append(
            {
                "tp": tp,
                "intermediate_per_rank": ispp,
                "block_fp8_compressed_tensors": whole,
                "block_fp8_plain": whole or (refine and refined >= REFINE_MIN),
                "block_fp8_plain_refined_to": None if whole else refined,
                "per_channel_fp8": inter % tp == 0,
                "with_expert_parallel": True,
            }
        )
    return rows
