"""vLLM's own launch arguments: read a `vllm serve` command the way the chosen release does.

    read_launch(command, version)  -> Launch (model, values by EngineArgs field, problems)
    arg_table(version)             -> every `vllm serve` option of that release

Modules: table (the per-release argument table extracted from the wheels,
knowledge/vllm_args.toml), values (vLLM's value types: human-readable sizes, JSON, choices),
parse (FlexibleArgumentParser + argparse), command (pasted commands: `vllm serve`, the
api_server module, `docker run`, `LLM(...)`).
"""

from __future__ import annotations

from collections.abc import Sequence

from servecheck.launch.command import Command, split_command
from servecheck.launch.parse import Launch, parse_args
from servecheck.launch.table import ArgSpec, ArgTable, arg_table

__all__ = ["ArgSpec", "ArgTable", "Command", "Launch", "arg_table", "parse_args", "read_launch"]


def read_launch(command: str | Sequence[str], version: str, *, model: str | None = None) -> Launch:
    """Parse a pasted command or the arguments after `--` for vLLM release `version`.

    `model` is the model named outside the command (e.g. `servecheck check MODEL -- ARGS`)."""
    cmd = split_command(command)
    return parse_args(
        cmd.argv,
        version,
        model=model or cmd.model,
        env=cmd.env,
        source=cmd.source,
        model_taken=cmd.model is not None,
    )
