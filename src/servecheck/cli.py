"""servecheck command line: registers one command module each (servecheck/commands/).

    servecheck check MODEL [--gpu NAME|auto|cpu] [--vllm-version V] [--format text|json|markdown]
    servecheck rules [CODE]

Exit codes: 0 = no error findings, 1 = error findings, 2 = bad input or usage.
Command modules import heavy code inside their functions so `servecheck --help` starts fast.
"""

from __future__ import annotations

import typer

from servecheck.commands import check, rules
from servecheck.commands import compare as compare_cmd
from servecheck.commands import explain as explain_cmd
from servecheck.commands import fix as fix_cmd
from servecheck.commands import gpus as gpus_cmd
from servecheck.commands import plan as plan_cmd

app = typer.Typer(
    name="servecheck",
    help="Will this checkpoint load, fit and run under vLLM? Answers from config.json and "
    "safetensors headers, before you download or load any weights.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command(epilog=check.EPILOG)(check.check)
app.command()(rules.rules)
app.command(epilog=explain_cmd.EPILOG)(explain_cmd.explain)
app.command(epilog=fix_cmd.EPILOG)(fix_cmd.fix)
app.command(epilog=compare_cmd.EPILOG)(compare_cmd.compare)
app.command(epilog=gpus_cmd.EPILOG)(gpus_cmd.gpus)
app.command(epilog=plan_cmd.EPILOG)(plan_cmd.plan)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
