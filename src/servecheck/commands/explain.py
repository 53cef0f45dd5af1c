"""servecheck explain: match a vLLM log or traceback against known error signatures."""

from __future__ import annotations

import argparse
import sys

from servecheck.cli_options.common import add_format

NAME = "explain"
HELP = "a vLLM log that already failed: the root error, its cause, the fix"
DESCRIPTION = (
    "Explain a vLLM error: the root error, its cause, the fix, and the finding that predicts "
    "it. Reads a log or traceback file, or standard input, as pasted: docker, k8s and Ray "
    "prefixes, issue text around the log, JSON log records; several attempts in one paste are "
    "explained one by one."
)
EPILOG = """exit codes: 0 = a known signature matched; 1 = an unknown error (its exception, the vLLM
file and function that raised it and the nearest known signatures are printed); 2 = the input
cannot be read

examples:
  servecheck explain vllm.log
  vllm serve ./model 2>&1 | tail -n 300 | servecheck explain --format json"""
TAKES_VLLM_ARGS = False


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "log", nargs="?", metavar="LOG", help="log or traceback file; '-' reads standard input"
    )
    add_format(p, ("text", "json"))
    p.set_defaults(print_usage=p.print_usage)


def run(args: argparse.Namespace) -> int:
    from servecheck.explain import explain_text
    from servecheck.render import explain as render
    from servecheck.source.text import read_text_input

    if args.log is None and sys.stdin.isatty():
        args.print_usage(sys.stderr)
        sys.stderr.write("servecheck explain: give a log file, or pipe a log into it\n")
        return 2
    expl = explain_text(read_text_input(args.log))
    render.emit(expl, args)
    return render.exit_code(expl)
