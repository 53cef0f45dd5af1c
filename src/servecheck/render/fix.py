"""`servecheck fix` output: text (terminal), markdown, JSON; and its exit code."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from servecheck.fix import FixOutcome
from servecheck.fix.agreement import Disagreement
from servecheck.render.console import VERDICT_STYLE, make_console, write, write_json

DIFF_LINES = 120
STRATEGY_TEXT = {
    "checkpoint": "the layers stored unquantized that the config would quantize, read from "
    "the safetensors headers",
    "conventional": "the current entries that hold, lm_head, the embedding and the final norm, "
    "and the layers the headers require, each verified",
    "explicit": "conventional, plus every norm, bias and router gate by name, each verified",
}

if TYPE_CHECKING:
    from rich.console import Console


def emit(outcome: FixOutcome, args: argparse.Namespace) -> None:
    if args.format == "json":
        write_json(outcome_dict(outcome))
    elif args.format == "markdown":
        write(render_markdown(outcome))
    elif getattr(args, "quiet", False):
        for d in outcome.proposal.unfixable:
            write(f"cannot be fixed by config.json: {d.module}: {d.reason}")
    else:
        render_text(outcome, make_console(), verbose=args.verbose, model=str(args.model))


def exit_code(outcome: FixOutcome) -> int:
    return outcome.exit_code


def outcome_dict(o: FixOutcome) -> dict:
    """The JSON view of a fix (field names are a contract: extend, don't rename)."""
    p = o.proposal

    def dis(d: Disagreement) -> dict:
        return {
            "module": d.module,
            "kind": d.kind,
            "stored": d.stored,
            "resolved": d.resolved,
            "fixable": d.fixable,
            "reason": d.reason,
            "remedy": d.remedy,
            "code": d.code,
        }

    return {
        "location": p.report.location,
        "config": str(o.config_path),
        "strategy": p.strategy,
        "method": p.report.quant.method,
        "ignore_key": str(p.location),
        "changed": p.changed,
        "verified": p.verified,
        "before_ignore": list(p.before),
        "after_ignore": list(p.after),
        "added": list(p.added),
        "removed": [e for e in p.before if e not in set(p.after)],
        "required_unquantized": list(p.required),
        "entries": [v.as_dict() for v in p.verdicts],
        "problems_before": [dis(d) for d in p.before_problems],
        "unfixable": [dis(d) for d in p.unfixable],
        "notes": list(p.notes),
        "check_before": {
            "verdict": o.before.verdict,
            "codes": sorted({f.code for f in o.before.findings}),
        },
        "check_after": {
            "verdict": o.after.verdict,
            "codes": sorted({f.code for f in o.after.findings}),
        },
        "targeted": [{"code": c, "status": s} for c, s in o.targeted],
        "diff": o.diff,
        "written": (
            None
            if o.written is None
            else {
                "config": str(o.written.path),
                "backup": str(o.written.backup) if o.written.backup else None,
                "links": list(o.written.links),
            }
        ),
        "nothing_written": o.nothing_written,
        "exit_code": o.exit_code,
    }


def render_text(o: FixOutcome, console: Console, verbose: bool, model: str) -> None:
    from rich.text import Text

    from servecheck.fix import group_verdicts
    from servecheck.summary import counted, entries_text

    p = o.proposal
    n = len(p.before)
    console.print(
        Text.assemble(
            ("Checkpoint  ", "bold"),
            f"{p.report.location} ({p.report.quant.method}, {p.location}: {entries_text(n)})",
        )
    )
    how = STRATEGY_TEXT[p.strategy]
    console.print(Text.assemble(("Strategy    ", "bold"), f"{p.strategy}: {how}"))
    for note in p.notes:
        console.print(Text(f"Note        {note}", style="dim"))
    fixable = [d for d in p.before_problems if d.fixable]
    if fixable:
        console.print(Text("\nWhat the ignore list gets wrong (before)", style="bold"))
        for d in fixable[: None if verbose else 10]:
            console.print(Text(f"  ✖ {d.module}: {d.reason}", style="red"))
        if len(fixable) > 10 and not verbose:
            console.print(
                Text(f"  and {len(fixable) - 10} more (--verbose shows them)", style="dim")
            )
    elif p.report.checkpoint.config_only:
        console.print(Text("\nConfig only: stored dtypes unknown, entries judged by vLLM's rules."))
    elif not p.unfixable:
        console.print(Text("\nThe ignore list already agrees with the stored tensors.", "green"))
    if p.unfixable:
        console.print(Text("\nCannot be fixed by config.json", style="bold red"))
        for d in p.unfixable:
            console.print(Text(f"  ✖ {d.module}: {d.reason}", style="red"))
            if d.remedy:
                console.print(Text(f"      → {d.remedy}", style="yellow"))
    console.print(
        Text(
            f"\nProposed ignore list ({entries_text(len(p.after))}; was {n})",
            style="bold",
        )
    )
    accepted = {v.entry: v for v in p.verdicts if v.accepted}
    before = set(p.before)
    for e in p.after:
        v = accepted.get(e)
        mark, style = ("  ", "") if e in before else ("+ ", "green")
        line = Text(f"  {mark}{e}", style=style)
        if v is not None:
            line.append(f"   {v.reason}", style="dim")
        console.print(line)
    refused = [v for v in p.verdicts if not v.accepted and v.code != "duplicate"]
    if refused:
        title = "Left out" if p.strategy == "checkpoint" else "Refused"
        console.print(Text(f"\n{title}", style="bold"))
        groups = group_verdicts(refused)
        limit = None if verbose else 15
        for tpl, vs in groups[:limit]:
            v = vs[0]
            what = v.entry if len(vs) == 1 else f"{tpl} ×{len(vs)}"
            mark = "- " if v.entry in before else "✖ "
            line = Text(f"  {mark}{what}", style="red" if v.entry in before else "yellow")
            line.append(f"  ({v.source})", style="dim")
            line.append(f"  {v.reason}", style="dim")
            console.print(line)
        if limit is not None and len(groups) > limit:
            console.print(
                Text(f"  and {counted(len(groups) - limit, 'more group')} (--verbose)", "dim")
            )
    if p.changed:
        console.print(Text("\nVerification", style="bold"))
        if p.verified:
            console.print(
                Text(
                    "  re-resolved in memory: every module vLLM quantizes agrees with its stored "
                    "dtype, and no fused layer or MoE block is split"
                    if not p.report.checkpoint.config_only
                    else "  re-resolved in memory: no fused layer or MoE block is split (config "
                    "only: stored dtypes unknown)",
                    style="green",
                )
            )
        else:
            console.print(Text("  the proposed list does not verify", style="red"))
    changes = o.code_changes()
    if changes:
        parts = []
        for code, sev, status in changes:
            style = {"gone": "green", "remains": "red" if sev == "error" else "yellow"}.get(
                status, "red"
            )
            parts.append((f"{code} {status}", style))
            parts.append(("  ", ""))
        console.print(Text.assemble(("  check before → after: ", ""), *parts))
    console.print(
        Text.assemble(
            ("  verdict ", ""),
            (o.before.verdict.upper(), VERDICT_STYLE[o.before.verdict]),
            (" → ", ""),
            (o.after.verdict.upper(), VERDICT_STYLE[o.after.verdict]),
        )
    )
    if o.diff:
        console.print()
        lines = o.diff.splitlines()
        shown = lines if verbose or len(lines) <= DIFF_LINES else lines[:DIFF_LINES]
        for line in shown:
            style = (
                "bold"
                if line.startswith(("---", "+++"))
                else "cyan"
                if line.startswith("@@")
                else "green"
                if line.startswith("+")
                else "red"
                if line.startswith("-")
                else ""
            )
            console.print(Text(line, style=style))
        if len(shown) < len(lines):
            console.print(
                Text(f"and {counted(len(lines) - len(shown), 'more diff line')} (--verbose)", "dim")
            )
    if o.written is not None:
        if o.written.backup is not None:
            console.print(
                Text(f"\nWrote {o.written.path} (original kept as {o.written.backup})", "green")
            )
        elif not o.written.links and (o.written.path.parent / "hf_overrides.json").exists():
            console.print(
                Text(
                    f"\nWrote {o.written.path.parent}: config.json, hf_overrides.json and a "
                    "README on serving the Hub model with them",
                    style="green",
                )
            )
        else:
            console.print(
                Text(
                    f"\nWrote overlay {o.written.path.parent}: config.json + "
                    f"{len(o.written.links)} links; load it with vLLM directly",
                    style="green",
                )
            )
    elif o.nothing_written:
        console.print(Text(f"\nNothing written: {o.nothing_written}.", style="green"))
    elif p.changed and p.verified:
        command = f"servecheck fix {model}"
        if p.strategy != "checkpoint":
            command += f" --strategy {p.strategy}"
        console.print(
            Text(
                f"\nApply: {command} --write  (keeps config.json.orig)\n"
                f"   or: {command} --out DIR  (overlay folder vLLM can load)",
                style="dim",
            )
        )


def render_markdown(o: FixOutcome) -> str:
    p = o.proposal
    out = [f"# servecheck fix: {p.report.location}", ""]
    out.append(f"Strategy **{p.strategy}**, `{p.location}` ({len(p.before)} → {len(p.after)})")
    out.append("")
    if p.unfixable:
        out += ["## Cannot be fixed by config.json", ""]
        out += [f"- `{d.module}`: {d.reason}. {d.remedy}" for d in p.unfixable]
        out.append("")
    out += ["## Entries", "", "| Entry | Source | Kept | Why |", "|---|---|---|---|"]
    for v in p.verdicts:
        if v.code != "duplicate":
            kept = "✅" if v.accepted or v.entry in p.after else "❌"
            out.append(f"| `{v.entry}` | {v.source} | {kept} | {v.reason} |")
    out += ["", "## Check before → after", ""]
    out += [f"- {c} ({s}): {st}" for c, s, st in o.code_changes()]
    out.append(f"- verdict: {o.before.verdict.upper()} → {o.after.verdict.upper()}")
    if o.diff:
        out += ["", "## Diff", "", "```diff", o.diff.rstrip("\n"), "```"]
    out.append("")
    return "\n".join(out)
