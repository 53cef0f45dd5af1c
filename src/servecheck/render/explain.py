"""`servecheck explain` output: text (terminal) and JSON; and its exit code."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from servecheck.explain import ErrorLine, Explanation
from servecheck.render import exit as exit_codes
from servecheck.render.console import make_console, write_json

if TYPE_CHECKING:
    from rich.console import Console

MAX_OTHERS = 5
MAX_SHOWN = 600  # characters of a pasted line shown or put in JSON


def _clip(text: str) -> str:
    text = text.strip()
    return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 3] + "..."


WHERE = {"root": "root error", "error": "earlier error", "log": "log line"}


def emit(expl: Explanation, args: argparse.Namespace) -> None:
    if args.format == "json":
        write_json(to_dict(expl))
    elif not getattr(args, "quiet", False):
        render_text(expl, make_console())


def _candidate(error: ErrorLine, frame: tuple[str, str] | None = None) -> dict[str, Any]:
    from servecheck.explain.reading import source_frame

    frame = frame or source_frame(error)
    return {
        **error.as_dict(),
        "kind": error.kind,
        "file": frame[0] if frame else None,
        "function": frame[1] if frame else None,
    }


def _other(error: ErrorLine) -> dict[str, Any]:
    """Another candidate error, with the family its words and source suggest."""
    from servecheck.explain import family_of

    data = _candidate(error)
    path = (data["file"] or "").removeprefix("vllm/")
    data["family"] = family_of(error.text, path, data["function"] or "")
    return data


def to_dict(expl: Explanation) -> dict[str, Any]:
    """JSON form of an explanation. Field names are a contract: extend, never rename.

    The top level describes the last attempt in the input; `failures` lists every attempt."""
    data = _failure(expl)
    data["failures"] = [_failure(f) for f in (expl.failures or (expl,))]
    return data


def _failure(expl: Explanation) -> dict[str, Any]:
    from servecheck.findings.rules import all_rules

    registry = all_rules()
    data: dict[str, Any] = {
        "matched": expl.matched,
        "family": expl.family,
        "root_error": _candidate(expl.root, expl.frame) if expl.root else None,
        "lines": list(expl.lines),
        "vllm_version": expl.vllm_version,
    }
    data["others"] = [_other(c) for c in expl.others()[:MAX_OTHERS]]
    if expl.match is not None:
        m = expl.match
        data["signature"] = m.signature.as_dict()
        data["detail"] = m.detail()
        data["fields"] = dict(m.fields)
        data["evidence"] = {"where": m.where, "line": m.line, "text": _clip(m.raw)}
        data["findings"] = [
            {
                "code": code,
                "name": registry[code].name if code in registry else None,
                "summary": registry[code].summary() if code in registry else None,
            }
            for code in m.signature.finding
        ]
        data["alternatives"] = [
            {"id": a.signature.id, "where": a.where, "line": a.line} for a in expl.alternatives
        ]
        return data
    data["signature"] = None
    data["message"] = "no known signature"
    data["root_guess"] = (
        {"line": expl.guess.number, "text": _clip(expl.guess.raw)} if expl.guess else None
    )
    data["unknown"] = {
        "exception": expl.root.exception if expl.root else None,
        "file": expl.frame[0] if expl.frame else None,
        "function": expl.frame[1] if expl.frame else None,
        "nearest": [
            {"id": n.id, "family": n.family, "title": n.title, "score": n.score}
            for n in expl.nearest
        ],
    }
    return data


def exit_code(expl: Explanation) -> int:
    """0 = a known signature matched; 1 = none matched (nothing found where it was asked)."""
    return exit_codes.found(expl.matched)


def render_text(expl: Explanation, console: Console) -> None:
    failures = expl.failures or (expl,)
    if len(failures) > 1:
        console.print(
            f"[bold]{len(failures)} attempts in this log[/] [dim](each explained on its own; "
            "the last is the most recent)[/]"
        )
    for n, failure in enumerate(failures, start=1):
        if len(failures) > 1:
            first, last = failure.lines
            console.print(f"\n[bold]Attempt {n}[/] [dim](lines {first}-{last})[/]")
        _render_one(failure, console)


def _render_one(expl: Explanation, console: Console) -> None:
    from rich.markup import escape

    if expl.match is None:
        _render_unknown(expl, console)
    else:
        _render_match(expl, console)
    others = expl.others()
    if others:
        console.print("[dim]Other errors in the log (less likely the root):[/]")
        for c in others[:MAX_OTHERS]:
            text = c.text if len(c.text) <= 140 else c.text[:137] + "..."
            console.print(f"[dim]  line {c.number} ({c.kind}): {escape(text)}[/]", highlight=False)


def _render_unknown(expl: Explanation, console: Console) -> None:
    from rich.markup import escape

    console.print("[bold yellow]unknown error[/]: no known signature matches it")
    if expl.root is None:
        console.print("No line in the input looks like an error.")
        return
    console.print(f"Most likely root error (line {expl.root.number}):")
    console.print(f"  {escape(_clip(expl.root.raw))}", highlight=False)
    if expl.root.exception:
        console.print(f"[bold]Exception:[/] {escape(expl.root.exception)}")
    if expl.frame:
        console.print(f"[bold]Raised in:[/] {expl.frame[0]} ({expl.frame[1]})")
    if expl.family:
        from servecheck.explain import load_families

        fam = load_families().get(expl.family)
        if fam is not None:
            console.print(f"[bold]Looks like:[/] {escape(fam.title)} [dim](a guess)[/]")
            console.print(f"[bold green]Where to look:[/] {escape(fam.fix)}")
    for near in expl.nearest:
        console.print(
            f"[dim]Nearest known: {escape(near.title)} ({near.id}, similarity {near.score})[/]",
            highlight=False,
        )


def _render_match(expl: Explanation, console: Console) -> None:
    from rich.markup import escape

    from servecheck.findings.rules import all_rules

    m = expl.match
    assert m is not None
    sig = m.signature
    console.print(f"[bold]{escape(sig.title)}[/]  [dim]({sig.id})[/]")
    console.print(f"[dim]Matched the {WHERE[m.where]} at line {m.line}:[/]")
    console.print(f"  {escape(_clip(m.raw))}", highlight=False)
    if m.where != "root" and expl.root is not None:
        console.print(
            f"[dim]Root error (line {expl.root.number}):[/] {escape(_clip(expl.root.text))}"
        )
    detail = m.detail()
    if detail:
        console.print(f"[bold]Detail:[/] {escape(detail)}")
    console.print(f"[bold]Cause:[/] {escape(sig.cause)}")
    console.print(f"[bold green]Fix:[/] {escape(sig.fix)}")
    if sig.table == "mined" and len(sig.finding) > 2:
        codes = ", ".join(sig.finding)
        console.print(
            f"[bold]Checks for this family:[/] {codes} [dim](`servecheck rules CODE`; "
            "`servecheck check MODEL` runs them before loading)[/]"
        )
    elif sig.finding:
        registry = all_rules()
        for code in sig.finding:
            name = registry[code].name if code in registry else "?"
            console.print(
                f"[bold]Predicted by:[/] {code} {name} "
                f"[dim](`servecheck rules {code}`; `servecheck check MODEL` finds it before "
                "loading)[/]"
            )
    console.print(f"[dim]vLLM source: {escape(sig.vllm_source)}[/]")
    for ref in sig.refs:
        console.print(f"[dim]See: {ref}[/]", highlight=False)
    if expl.alternatives:
        others = ", ".join(a.signature.id for a in expl.alternatives)
        console.print(f"[dim]Also matched: {others}[/]")
