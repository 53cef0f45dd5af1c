"""Choose a layout and write the `vllm serve` command (plus `ray start` for several nodes)."""

from __future__ import annotations

from dataclasses import dataclass

from servecheck.plan.memory import LayoutPlan


@dataclass(frozen=True)
class Command:
    """Copy-pasteable launch commands. `head`/`workers` are set for multi-node layouts."""

    env: tuple[tuple[str, str], ...]
    serve: str
    head: str | None = None
    workers: str | None = None
    notes: tuple[str, ...] = ()

    def text(self) -> str:
        lines = []
        if self.head:
            lines.append("# on the head node")
            lines.append(self.head)
            lines.append("# on every other node")
            lines.append(self.workers or "")
            lines.append("# then, on the head node")
        lines.append(self.serve)
        return "\n".join(lines)


def rank_key(p: LayoutPlan, total_gpus: int) -> tuple:
    """Preference among fitting layouts: use the GPUs given, TP inside a node before PP,
    no expert parallelism unless it is needed, then more KV cache."""
    lay = p.layout
    uses_all = lay.world == total_gpus
    return (
        0 if p.status == "fits" else 1,
        0 if uses_all else 1,
        -lay.world,
        lay.pp,
        1 if lay.ep else 0,
        -p.kv_tokens,
    )


def choose(plans: list[LayoutPlan], total_gpus: int) -> LayoutPlan | None:
    fitting = [p for p in plans if p.fits]
    if not fitting:
        return None
    return min(fitting, key=lambda p: rank_key(p, total_gpus))


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
) -> Command:
    lay = plan.layout
    args = ["vllm", "serve", shell_quote(model)]
    if lay.tp > 1:
        args += ["--tensor-parallel-size", str(lay.tp)]
    if lay.pp > 1:
        args += ["--pipeline-parallel-size", str(lay.pp)]
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
    head = workers = None
    env_items = tuple(sorted(env.items()))
    if lay.nodes > 1:
        # vLLM docs (serving/parallelism_scaling): multi-node serving runs on a Ray cluster;
        # the serve command runs on the head node with the Ray executor backend.
        args += ["--distributed-executor-backend", "ray"]
        exports = " ".join(f"{k}={shell_quote(v)}" for k, v in env_items)
        prefix = f"{exports} " if exports else ""
        head = f"{prefix}ray start --head --port=6379"
        workers = f"{prefix}ray start --address=<head-node-ip>:6379"
    prefix = " ".join(f"{k}={shell_quote(v)}" for k, v in env_items)
    serve = (prefix + " " if prefix else "") + " ".join(args)
    return Command(env=env_items, serve=serve, head=head, workers=workers)
