"""servecheck rules: list the finding codes, or explain one."""

from __future__ import annotations

import argparse

from servecheck.cli_options.common import add_format, add_version

NAME = "rules"
HELP = "every finding code, or one explained (why it matters, an example, the fix)"
DESCRIPTION = "List the finding codes, or explain one: why it matters, an example, the fix."
EPILOG = """examples:
  servecheck rules
  servecheck rules R001
  servecheck rules fused-shards-differ --format json"""
TAKES_VLLM_ARGS = False


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("code", nargs="?", metavar="CODE", help="a finding code (R001) or name")
    add_version(p)
    add_format(p)


def run(args: argparse.Namespace) -> int:
    from servecheck.errors import InputError
    from servecheck.findings.rules import all_rules
    from servecheck.render import rules as render
    from servecheck.versions import resolve_version

    registry = all_rules()
    version = resolve_version(args.vllm_version).effective
    if args.code is None:
        render.listing(registry, version, args)
        return 0
    key = args.code.upper()
    if key not in registry:
        key = next((c for c, r in registry.items() if r.name == args.code), "")
    if not key:
        raise InputError(f"unknown rule {args.code!r}; `servecheck rules` lists them")
    render.one(registry[key], version, args)
    return 0
