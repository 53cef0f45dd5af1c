"""The "Recommended action plan" of the markdown report, generated from the findings, from a
fix that servecheck proposed and verified (servecheck.fix), and from the plan's launch command,
every step checked."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from servecheck.findings.registry import Severity
from servecheck.report import CheckReport


def action_plan(report: CheckReport) -> list[str]:
    """Markdown lines for the section, title included."""
    out = ["## Recommended action plan", ""]
    errors = [f for f in report.findings if f.severity == Severity.ERROR]
    proposal = report.fix  # proposed and verified by servecheck.api.check(propose_fix=True)
    why_not = report.fix_unavailable
    loc = shlex.quote(report.location)
    folder = (
        str(Path(report.location).parent)
        if report.location.endswith(".json")
        else (report.location.rstrip("/"))
    )
    fixed_dir = shlex.quote(folder + "-fixed")
    step = 0
    handled: set[str] = set()
    load_dir = shlex.quote(folder)
    if proposal is not None and proposal.changed and proposal.verified:
        fixes = proposal.resolved_codes
        if any(c != "R009" for c in fixes):
            step += 1
            handled.update(fixes)
            load_dir = fixed_dir
            out += _fix_step(step, proposal, loc, fixed_dir)
        elif fixes:
            step += 1
            out += [
                f"### {step}. Optional: shorten the ignore list",
                "",
                f"{len(proposal.dropped)} of its {len(proposal.before)} entries "
                f"{'changes' if len(proposal.dropped) == 1 else 'change'} nothing "
                "(R009). The list derived from the headers makes vLLM resolve every module "
                f"the same way: `servecheck fix {loc} --write` (keeps config.json.orig).",
                "",
            ]
    if proposal is not None and proposal.unfixable:
        step += 1
        out += [f"### {step}. Re-quantize: config.json cannot fix these", ""]
        for d in proposal.unfixable:
            code = f" ({d.code})" if d.code else ""
            out.append(f"- `{d.module}`{code}: {d.reason}. **Fix:** {d.remedy}.")
            if d.code:
                handled.add(d.code)
        out.append("")
    rest = [f for f in errors if f.code not in handled]
    if rest:
        step += 1
        out += [f"### {step}. {'Other errors' if step > 1 else 'Fix the errors'}", ""]
        for f in rest:
            out.append(f"- **{f.code}** {f.message}. **Fix:** {f.fix}")
        out.append("")
    if report.checkpoint.config_only and report.quant.method is not None:
        out += [
            "Only config.json was read, so stored dtypes were not checked: point servecheck at "
            "the checkpoint folder (it reads the safetensors headers only) to verify them; "
            "`servecheck fix` then derives a verified ignore list from them if they disagree.",
            "",
        ]
    elif why_not and errors:
        out += [f"`servecheck fix` cannot help here: {why_not}.", ""]
    blocked = bool(rest) or bool(proposal and proposal.unfixable)
    step += 1
    out += [f"### {step}. Load test" + (" (after the steps above)" if blocked else ""), ""]
    out += ["```bash", launch_command(report, folder, load_dir), "```", ""]
    return out


def launch_command(report: CheckReport, folder: str, load_dir: str) -> str:
    """The plan's recommended `vllm serve` command (layout, context, KV-cache dtype) when there
    is one, pointed at the folder to load (the fixed overlay after a fix step)."""
    plan = report.plan
    if plan is None or plan.command is None:
        return f"vllm serve {load_dir}"
    text = plan.command.text()
    if load_dir != shlex.quote(folder):
        text = text.replace(f"vllm serve {shlex.quote(folder)}", f"vllm serve {load_dir}", 1)
    return text


def _fix_step(step: int, proposal, loc: str, fixed_dir: str) -> list[str]:
    p = proposal
    fixable = [d for d in p.before_problems if d.fixable]
    names = ", ".join(f"`{d.module}`" for d in fixable[:4])
    more = f" and {len(fixable) - 4} more" if len(fixable) > 4 else ""
    key = p.location.key
    snippet = json.dumps({key: list(p.after)}, indent=2)[1:-1].strip("\n")
    out = [
        f"### {step}. Correct the ignore list in config.json (verified)",
        "",
        f"The safetensors headers contradict `{p.location}` for {_plural(len(fixable), 'module')}: "
        f"{names}{more}. The list below is derived from the stored dtypes; re-resolving every "
        "module with it makes each agree with how it is stored and splits no fused layer "
        f"(resolves {', '.join(p.resolved_codes)}).",
        "",
        "```json",
        snippet,
        "```",
        "",
        "Apply it as an overlay folder vLLM loads directly (the original folder is not touched):",
        "",
        "```bash",
        f"servecheck fix {loc} --out {fixed_dir}",
        "```",
        "",
        f"or in place, keeping config.json.orig: `servecheck fix {loc} --write`.",
        "",
    ]
    return out


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"
