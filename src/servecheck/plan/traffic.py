"""Inter-GPU traffic of a layout, per token, for comparing layouts (not a performance model).

Counts the bytes each GPU sends per token processed, from what vLLM communicates:
- tensor parallelism: two all-reduces of the hidden state per decoder layer (after attention
  and after the MLP), ring all-reduce = 2 (n - 1) / n of the tensor per GPU;
- MoE layers without expert parallelism shard over tp x dp GPUs (vLLM 0.33 fused_moe/config.py
  FusedMoEParallelConfig.make): the MoE all-reduce spans all of them;
- expert parallelism: each token's hidden state sent to its top-k experts and back (dispatch
  and combine, all-to-all), the share of experts held elsewhere crossing the links;
- pipeline parallelism: the hidden state once per stage boundary;
- data parallel replicas of a dense model share nothing.
Bytes crossing nodes are kept apart: they go over the network, not NVLink/PCIe. Link speeds are
nominal (memory.toml [links]) and only weigh intra- against inter-node bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

from servecheck.model.config import ModelConfig
from servecheck.plan.config import table
from servecheck.plan.layouts import Layout

ACT_BYTES = 2  # hidden states travel in the model dtype (bf16/fp16)


@dataclass(frozen=True)
class Traffic:
    intra: float  # bytes per token per GPU over NVLink / PCIe
    inter: float  # bytes per token per GPU over the network
    seconds: float  # intra / link + inter / network, per token (for ranking only)

    def text(self) -> str:
        if self.intra + self.inter == 0:
            return "no inter-GPU traffic"
        parts = [f"{_kib(self.intra)}/token between GPUs"] if self.intra else []
        if self.inter:
            parts.append(f"{_kib(self.inter)}/token across nodes")
        return ", ".join(parts)


def _kib(n: float) -> str:
    if n >= 2**20:
        return f"{n / 2**20:.1f} MiB"
    return f"{n / 1024:.0f} KiB" if n >= 1024 else f"{n:.0f} B"


def moe_layers(cfg: ModelConfig) -> int:
    if not cfg.is_moe:
        return 0
    dense = set(range(min(cfg.first_k_dense_replace, cfg.num_layers))) | set(cfg.mlp_only_layers)
    step = max(cfg.moe_layer_freq or 1, 1)
    return sum(1 for i in range(cfg.num_layers) if i not in dense and i % step == 0)


def layout_traffic(cfg: ModelConfig, layout: Layout, nvlink: bool) -> Traffic:
    links = table()["links"]
    hidden = cfg.hidden_size * ACT_BYTES
    layers = cfg.num_layers
    moe = moe_layers(cfg)
    dense = layers - moe

    def ring(n: int) -> float:
        return 2 * (n - 1) / n if n > 1 else 0.0

    intra = inter = 0.0
    tp = layout.tp
    # attention (every layer) and dense MLPs: TP all-reduce inside the node
    intra += (layers + dense) * hidden * ring(tp)
    # GPUs of one MoE group (a stage's EP or MoE-TP ranks) inside a node: replicas are packed
    # a whole replica per node, so with PP a node holds gpus_per_node / pp of a group
    node = layout.gpus_per_node or layout.world
    group_per_node = max(1, node // layout.pp) if layout.replica_gpus <= node else layout.tp
    if moe:
        if layout.ep:
            ep, per_node = layout.ep_size, group_per_node
            remote = (ep - 1) / ep
            across = max(ep - per_node, 0) / ep
            sent = 2 * moe * cfg.num_experts_per_tok * hidden
            intra += sent * (remote - across)
            inter += sent * across
            intra += moe * hidden * ring(tp)  # the shared part after combine, within TP
        else:
            n = layout.moe_tp
            share = ring(n) * moe * hidden
            per_node = group_per_node
            if n > per_node:
                inter += share * (n - per_node) / n
                intra += share * per_node / n
            else:
                intra += share
    if layout.pp > 1:
        hops = (layout.pp - 1) * hidden / layout.pp
        per_node = layout.gpus_per_node or layout.world
        if layout.replica_gpus > per_node:
            inter += hops
        else:
            intra += hops
    link = links["nvlink_gbs"] if nvlink else links["pcie_gbs"]
    seconds = intra / (link * 1e9) + inter / (links["network_gbs"] * 1e9)
    return Traffic(intra, inter, seconds)
