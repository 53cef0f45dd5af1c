"""Choose a layout and write the `vllm serve` command (plus `ray start` for several nodes)."""

from __future__ import annotations

from dataclasses import dataclass

from servecheck.model.config import ModelConfig
from servecheck.plan.config import table
from servecheck.plan.memory import LayoutPlan
from servecheck.plan.traffic import Traffic, layout_traffic


@dataclass(frozen=True)
class Command:
    """Copy-pasteable launch commands. `head`/`workers` are set for multi-node layouts."""

    env: tuple[tuple[str, str], ...]
    serve: str
    head: str | None = None
    workers: str | None = None
    notes: tuple[str, ...] = ()
    style: str = "ray"  # multi-node: "ray" (a Ray cluster) or "data-parallel" (one per node)

    def text(self) -> str:
        lines = []
        if self.style == "data-parallel" and self.head:
            return "\n".join(
                ["# on the head node", self.head, "# on every other node", self.workers or ""]
            )
        if self.head:
            lines.append("# on the head node")
            lines.append(self.head)
            lines.append("# on every other node")
            lines.append(self.workers or "")
            lines.append("# then, on the head node")
        lines.append(self.serve)
        return "\n".join(lines)


@dataclass(frozen=True)
class Choice:
    """The recommended layout, the runner-up, and one line on why the one over the other."""

    best: LayoutPlan
    runner_up: LayoutPlan | None
    why: str


def total_kv(p: LayoutPlan) -> int:
    """Distinct KV tokens over all data-parallel replicas (TP ranks share one replica's)."""
    return p.kv_tokens * p.layout.dp


def choose(
    plans: list[LayoutPlan],
    total_gpus: int,
    cfg: ModelConfig | None = None,
    nvlink: bool = True,
) -> LayoutPlan | None:
    choice = choose_layout(plans, total_gpus, cfg, nvlink)
    return choice.best if choice else None


def choose_layout(
    plans: list[LayoutPlan],
    total_gpus: int,
    cfg: ModelConfig | None = None,
    nvlink: bool = True,
) -> Choice | None:
    """Among fitting layouts: comfortable fits first, all the GPUs given, then any layout whose
    KV cache is within kv_tolerance of the largest; of those the fewest pipeline stages, then
    the least traffic."""
    fitting = [p for p in plans if p.fits]
    if not fitting:
        return None
    tolerance = float(table()["layout_choice"]["kv_tolerance"])

    def traffic(p: LayoutPlan) -> Traffic:
        return layout_traffic(cfg, p.layout, nvlink) if cfg else Traffic(0.0, 0.0, 0.0)

    def group(p: LayoutPlan) -> tuple[int, int]:
        return (0 if p.status == "fits" else 1, 0 if p.layout.world == total_gpus else 1)

    # the capacity to compare with: the usual layouts' (PP only across nodes, MoE replicas
    # with expert parallelism); a deep pipeline inside a node is not the yardstick
    best_kv: dict[tuple[int, int], int] = {}
    for p in fitting:
        moe_dp = cfg is not None and cfg.is_moe and p.layout.dp > 1 and not p.layout.ep
        if not moe_dp and p.layout.pp <= p.layout.nodes:
            best_kv[group(p)] = max(best_kv.get(group(p), 0), total_kv(p))
    for p in fitting:
        best_kv.setdefault(group(p), total_kv(p))

    def key(p: LayoutPlan) -> tuple:
        g = group(p)
        enough = total_kv(p) >= (1 - tolerance) * best_kv[g]
        lay = p.layout
        # MoE replicas come with expert parallelism (vLLM's DP attention + EP pattern); TP
        # inside a node before PP (no pipeline bubbles); then the least traffic
        unusual = bool(cfg is not None and cfg.is_moe and lay.dp > 1 and not lay.ep)
        return (
            *g,
            unusual,
            0 if enough else 1,
            lay.pp,
            round(traffic(p).seconds, 12),
            -total_kv(p),
            lay.ep,
        )

    ranked = sorted(fitting, key=key)
    best = ranked[0]
    # the runner-up: the best layout with another number of replicas (DP against TP is the
    # comparison people weigh), else the next one
    others = [p for p in ranked[1:] if (p.layout.dp > 1) != (best.layout.dp > 1)]
    usual = [p for p in others if p.layout.pp <= p.layout.nodes]  # PP only across nodes
    pool = usual or others or ranked[1:]
    runner = pool[0] if pool else None
    why = _why(best, runner, key, traffic, tolerance, total_gpus, cfg)
    return Choice(best, runner, why)


def _why(best, runner, key, traffic, tolerance: float, total_gpus: int, cfg) -> str:
    if runner is None:
        return f"{best.layout.label} is the only layout that fits"
    b, r = best.layout.label, runner.layout.label
    kb, kr = total_kv(best), total_kv(runner)
    tb, tr = traffic(best), traffic(runner)
    kb_text, kr_text = f"{kb:,}", f"{kr:,}"
    reasons = {
        0: f"{r} fits with little KV-cache margin",
        1: f"it uses all {total_gpus} GPUs",
        2: "data-parallel replicas of an MoE model go with expert parallelism",
        3: (
            f"{kb / max(kr, 1):.1f}x the KV cache ({kb_text} vs {kr_text} tokens"
            f"{_kv_reason(best, runner, cfg)})"
        ),
        4: (f"fewer pipeline stages (no pipeline bubbles), KV cache {kb_text} vs {kr_text} tokens"),
        5: (
            f"less inter-GPU traffic ({tb.text()} vs {tr.text()}) with a KV cache within "
            f"{tolerance:.0%} of the largest ({kb_text} vs {kr_text} tokens)"
        ),
        6: f"more KV cache ({kb_text} vs {kr_text} tokens) at equal traffic",
    }
    kbest, krun = key(best), key(runner)
    first = next((i for i, (x, y) in enumerate(zip(kbest, krun, strict=True)) if x != y), 6)
    text = f"{b} over {r}: {reasons.get(first, reasons[6])}"
    if first == 3 and tb.seconds > tr.seconds:
        text += f"; at the cost of more traffic ({tb.text()} vs {tr.text()})"
    return text


def _kv_reason(best: LayoutPlan, runner: LayoutPlan, cfg) -> str:
    if cfg is not None and cfg.is_mla and best.layout.dp > runner.layout.dp:
        return "; MLA's latent KV is not split by TP, so every TP rank repeats it"
    if best.layout.dp > runner.layout.dp:
        return f" over {best.layout.dp} replicas"
    return ""


def closest(plans: list[LayoutPlan]) -> LayoutPlan | None:
    """The valid layout nearest to fitting (for the 'does not fit' verdict)."""
    valid = [p for p in plans if p.valid and p.stages]
    if not valid:
        return None
    order = {"context": 0, "no-kv": 1, "startup": 2, "weights": 3}
    return min(
        valid,
        key=lambda p: (order.get(p.status, 9), -p.layout.world, p.layout.pp, -p.available_kv),
    )


def shell_quote(text: str) -> str:
    safe = all(c.isalnum() or c in "-_./:=@+," for c in text)
    return text if safe and text else "'" + text.replace("'", "'\\''") + "'"


def build_command(
    model: str,
    plan: LayoutPlan,
    *,
    max_model_len: int | None,
    utilization: float | None,
    kv_cache_dtype: str | None,
    env: dict[str, str],
    speculative_tokens: int | None = None,
    extra: tuple[str, ...] = (),
) -> Command:
    lay = plan.layout
    args = ["vllm", "serve", shell_quote(model)]
    if lay.tp > 1:
        args += ["--tensor-parallel-size", str(lay.tp)]
    if lay.pp > 1:
        args += ["--pipeline-parallel-size", str(lay.pp)]
    if lay.dp > 1:
        args += ["--data-parallel-size", str(lay.dp)]
    if lay.ep:
        args.append("--enable-expert-parallel")
    if max_model_len:
        args += ["--max-model-len", str(max_model_len)]
    if utilization is not None:
        args += ["--gpu-memory-utilization", f"{utilization:g}"]
    if kv_cache_dtype and kv_cache_dtype != "auto":
        args += ["--kv-cache-dtype", kv_cache_dtype]
    if speculative_tokens:
        args += [
            "--speculative-config",
            shell_quote(f'{{"method": "mtp", "num_speculative_tokens": {speculative_tokens}}}'),
        ]
    args += [shell_quote(a) for a in extra]
    env_items = tuple(sorted(env.items()))
    prefix = " ".join(f"{k}={shell_quote(v)}" for k, v in env_items)
    prefix = prefix + " " if prefix else ""
    if (
        lay.nodes > 1
        and lay.dp > 1
        and lay.dp % lay.nodes == 0
        and lay.replica_gpus <= (lay.gpus_per_node or lay.world)
    ):
        # vLLM docs (serving/data_parallel_deployment): one `vllm serve` per node, the head
        # with the API server, the others headless from their first DP rank.
        local = lay.dp // lay.nodes
        common = [
            "--data-parallel-size-local",
            str(local),
            "--data-parallel-address",
            "<head-node-ip>",
            "--data-parallel-rpc-port",
            "13345",
        ]
        head = prefix + " ".join(args + common)
        start = ["--data-parallel-start-rank", f"<node-index x {local}>", "--headless"]
        workers = prefix + " ".join(args + common + start)
        return Command(
            env=env_items,
            serve=head,
            head=head,
            workers=workers,
            notes=(f"one command per node: {lay.nodes} nodes x {local} data-parallel ranks",),
            style="data-parallel",
        )
    head = workers = None
    if lay.nodes > 1:
        # vLLM docs (serving/parallelism_scaling): multi-node serving runs on a Ray cluster;
        # the serve command runs on the head node with the Ray executor backend.
        args += ["--distributed-executor-backend", "ray"]
        head = f"{prefix}ray start --head --port=6379"
        workers = f"{prefix}ray start --address=<head-node-ip>:6379"
    serve = prefix + " ".join(args)
    return Command(env=env_items, serve=serve, head=head, workers=workers)
