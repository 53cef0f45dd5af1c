"""servecheck command line: argparse, one module per command under servecheck/commands/.

    servecheck check MODEL [--gpu NAME|auto|cpu] [--gpus N] [--format text|json|markdown]
                     [-- <vllm serve arguments>]

Exit codes (every command): 0 = no error findings, 1 = error findings (or nothing found where
something was asked for, or a file could not be written), 2 = bad input or usage. Command
modules import heavy code inside their run functions so that `servecheck --help` starts in
milliseconds.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from servecheck import __version__
from servecheck.cli_options.help import HelpFormatter
from servecheck.commands import COMMANDS

DESCRIPTION = (
    "Will this checkpoint load, fit and run under vLLM? Answers from config.json and "
    "safetensors headers, before you download or load any weights."
)
EPILOG = (
    "exit codes: 0 = no error findings, 1 = error findings, 2 = bad input or usage\n"
    "run 'servecheck COMMAND --help' for a command's options and examples"
)
BUG_URL = "https://github.com/servecheck/servecheck/issues"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="servecheck",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"servecheck {__version__}")
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="print only errors; the exit code says the rest"
    )
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", dest="command")
    for module in COMMANDS:
        sub = subparsers.add_parser(
            module.NAME,
            help=module.HELP,
            description=module.DESCRIPTION,
            epilog=module.EPILOG,
            formatter_class=HelpFormatter,
        )
        module.add_arguments(sub)
        sub.add_argument(
            "-q",
            "--quiet",
            action="store_true",
            default=argparse.SUPPRESS,
            help="print only errors; the exit code says the rest",
        )
        sub.set_defaults(run=module.run, takes_vllm_args=module.TAKES_VLLM_ARGS)
    return parser


def split_vllm_args(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """Everything after the first `--` is passed through to vLLM untouched."""
    argv = list(argv)
    if "--" in argv:
        i = argv.index("--")
        return argv[:i], argv[i + 1 :]
    return argv, []


def main(argv: Sequence[str] | None = None) -> int:
    """Parse, run one command, and map every outcome to an exit code (0, 1 or 2)."""
    own, vllm_args = split_vllm_args(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(own)
    except SystemExit as exc:  # --help, --version, usage errors
        return int(exc.code or 0)
    if args.command is None:
        parser.print_help()
        return 2
    if vllm_args and not args.takes_vllm_args:
        print(
            f"servecheck {args.command}: error: arguments after '--' are only for commands "
            "that take a model",
            file=sys.stderr,
        )
        return 2
    args.vllm_args = vllm_args
    from servecheck.core import gc_paused

    with gc_paused():
        return run_guarded(args)


def run_guarded(args: argparse.Namespace) -> int:
    """One handler for every command: bad input is one sentence and exit 2, a bug a pointer."""
    from servecheck.cli_options.model import model_reading
    from servecheck.errors import InputError, WriteError

    try:
        with model_reading(args):
            return int(args.run(args))
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except WriteError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        _silence_stdout()
        return 0
    except Exception as exc:  # the one place an unexpected failure is turned into words
        if os.environ.get("SERVECHECK_DEBUG") == "1":
            raise
        name = type(exc).__name__
        print(
            f"servecheck {args.command} failed unexpectedly ({name}: {exc}).\n"
            f"This is a bug in servecheck; please report it at {BUG_URL} with the command "
            "you ran.\nSet SERVECHECK_DEBUG=1 to see the full traceback.",
            file=sys.stderr,
        )
        return 2


def _silence_stdout() -> None:
    """After the reader of a pipe went away (`| head`), let Python exit without complaint."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
