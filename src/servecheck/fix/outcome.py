"""The result of a fix: the proposal, the new config text and diff, the check after, writes."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from servecheck.check_result import CheckResult
from servecheck.fix.facts import FIXABLE_CODES, FixError
from servecheck.fix.files import (
    WriteResult,
    config_path,
    render_config,
    unified_diff,
    write_hub_overlay,
    write_in_place,
    write_overlay,
)
from servecheck.fix.propose import FixProposal


@dataclass(frozen=True)
class FixOutcome:
    proposal: FixProposal
    config_path: Path
    original_text: str
    new_text: str
    diff: str
    after: CheckResult  # `check` re-run on the result (the report itself when nothing changed)
    written: WriteResult | None = None
    nothing_written: str | None = None  # why --write / --out wrote nothing

    @property
    def before(self) -> CheckResult:
        return self.proposal.report

    def code_changes(self) -> list[tuple[str, str, str]]:
        """(code, severity, status) for every finding code before or after: 'gone', 'remains',
        'new'."""
        before = {f.code: f.severity.value for f in self.before.findings}
        after = {f.code: f.severity.value for f in self.after.findings}
        out = []
        for code in sorted(set(before) | set(after)):
            if code in before and code not in after:
                out.append((code, before[code], "gone"))
            elif code in before:
                out.append((code, after[code], "remains"))
            else:
                out.append((code, after[code], "new"))
        return out

    @property
    def targeted(self) -> list[tuple[str, str]]:
        """(code, 'gone'|'remains') for the findings an ignore-list fix addresses."""
        return [
            (code, status)
            for code, _, status in self.code_changes()
            if code in FIXABLE_CODES and status != "new"
        ]

    @property
    def exit_code(self) -> int:
        """0 when the result loads (no error findings) and nothing is left unfixable, else 1."""
        if self.proposal.unfixable or self.after.verdict == "fail":
            return 1
        return 0


def prepare(proposal: FixProposal, model: str | Path) -> FixOutcome:
    """The outcome before anything is written: the new config.json text and its diff."""
    cfg_path = config_path(model)
    try:
        original = cfg_path.read_text(encoding="utf-8")
    except OSError as exc:
        raise FixError(f"cannot read {cfg_path}: {exc.strerror or exc}") from None
    new_text = render_config(original, proposal.config) if proposal.changed else original
    diff = unified_diff(original, new_text, cfg_path.name)
    after = proposal.after_report if proposal.changed and proposal.after_report else proposal.report
    return FixOutcome(proposal, cfg_path, original, new_text, diff, after)


def write(
    outcome: FixOutcome,
    *,
    in_place: bool,
    out: Path | None,
    force: bool,
    hub: tuple[str, str] | None = None,
) -> FixOutcome:
    """Write the new config (atomically: in place keeping .orig, or as an overlay folder).

    `hub` (repo id, commit) says the weights are on the Hub: the overlay then holds the config
    and how to use it with vLLM, and nothing else.

    Nothing is written when the list is unchanged (`nothing_written` says why) or when it does
    not verify (FixError)."""
    if in_place and out is not None:
        raise FixError("use --write or --out, not both")
    p = outcome.proposal
    if not p.changed:
        why = "the proposed ignore list equals the current one"
        return dataclasses.replace(outcome, nothing_written=why)
    if not p.verified:
        raise FixError("the proposed list does not verify; not writing it")
    if hub is not None:
        if in_place or out is None:
            raise FixError(
                f"{hub[0]} is read from the Hub; servecheck never writes there or into the "
                "Hugging Face cache: use --out DIR for a folder with the corrected config"
            )
        written = write_hub_overlay(out, outcome.original_text, outcome.new_text, *hub, force=force)
    elif in_place:
        written = write_in_place(outcome.config_path, outcome.new_text, force=force)
    else:
        assert out is not None
        written = write_overlay(outcome.config_path, out, outcome.new_text, force=force)
    return dataclasses.replace(outcome, written=written)
