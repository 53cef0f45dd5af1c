"""`servecheck rules` output: the list of finding codes, or one rule's documentation."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from servecheck.render.console import make_console, write, write_json

if TYPE_CHECKING:
    from servecheck.findings.registry import Rule

# What a per-finding field of a rule's source reference stands for, when no finding fills it.
FIELD_WORDS = {
    "function": "(the selection function of the kernel concerned)",
    "loader": "(the model's weight loader)",
    "method_file": "(the quantization method's module)",
    "model_file": "(the model's module)",
    "oracle": "(the MoE backend's oracle module)",
    "source": "(the module of the rule that applies)",
    "env_source": "the kernel environment assumed (--kernel-env)",
}


def mirrors(r: type[Rule], version: str) -> str:
    """The rule's vLLM source reference for `version`, every placeholder filled."""
    import string

    names = {n for _, n, _, _ in string.Formatter().parse(r.vllm_ref) if n}
    fields = {n: FIELD_WORDS.get(n, f"(its {n.replace('_', ' ')})") for n in names}
    fields["ver"] = version
    return r.vllm_ref.format(**fields)


def rule_dict(r: type[Rule], version: str) -> dict[str, Any]:
    return {
        "code": r.code,
        "name": r.name,
        "severity": r.severity.value,
        "summary": r.summary(),
        "doc": r.doc(),
        "message": r.message,
        "fix": r.fix,
        "vllm_ref": r.vllm_ref,
        "mirrors": mirrors(r, version),
        "vllm_message": r.vllm_message,
        "exception": r.exception,
    }


def listing(registry: Mapping[str, type[Rule]], version: str, args: argparse.Namespace) -> None:
    if args.format == "json":
        write_json([rule_dict(r, version) for r in registry.values()])
    elif args.format == "markdown":
        lines = ["| Code | Name | Severity | Summary |", "|---|---|---|---|"]
        lines += [
            f"| {c} | {r.name} | {r.severity.value} | {r.summary()} |" for c, r in registry.items()
        ]
        write("\n".join(lines))
    elif not getattr(args, "quiet", False):
        from servecheck.render.tables import TextTable

        t = TextTable("Code", "Name", "Severity", "Summary")
        for c, r in registry.items():
            t.add_row(c, r.name, r.severity.value, r.summary())
        make_console().print(t)


def one(r: type[Rule], version: str, args: argparse.Namespace) -> None:
    ref = mirrors(r, version)
    if args.format == "json":
        write_json(rule_dict(r, version))
        return
    if args.format == "markdown":
        write(f"# {r.code} {r.name} ({r.severity.value})\n\n{r.doc()}\n\nMirrors: {ref}")
        return
    if getattr(args, "quiet", False):
        return
    from rich.text import Text

    console = make_console()
    console.print(Text.assemble((r.code, "bold"), f" {r.name} ({r.severity.value})"))
    if console.is_terminal:
        from rich.markdown import Markdown

        console.print(Markdown(r.doc()))
    else:  # the documentation as written: headings centred in a wide pipe would read badly
        console.print(r.doc(), markup=False)
    console.print(Text(f"Mirrors: {ref}", style="dim"))
