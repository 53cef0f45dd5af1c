"""Propose a corrected quantization ignore list for config.json, verified against the headers.

Weights are never touched. The safetensors headers are the truth about how each module is
stored; the config's ignore list is a claim about it. A fix is a new ignore list that makes
every module vLLM consults resolve the way it is stored, proven by resolving again.

    ctx = IgnoreContext(report)                    what is stored, what vLLM consults (facts)
    proposal = propose(report, "checkpoint", recheck=...)   new config, verdicts, verification
    outcome = prepare(proposal, model)             new config.json text and diff (outcome)
    outcome = write(outcome, in_place=..., out=...)   atomic write or overlay folder (files)

Modules: facts (stored dtypes, consulted modules, where the list lives), agreement (stored vs
resolved), entries (entry verdicts), derive (the checkpoint strategy), propose (proposals),
files (config text, diff, writing), outcome. The library surface (servecheck.api.fix) runs the
checks; nothing here imports it.

Strategies:
    checkpoint      the ignore list derived from the headers: exactly the Linear modules stored
                    unquantized that the config would quantize (plus a 16-bit lm_head), in the
                    shortest exact form (`re:` patterns where exact over this inventory).
    conventional    the entries conventionally left unquantized (lm_head, the embedding, the
                    final norm), in this model's names, each verified.
    explicit        conventional, plus patterns for the norms and the router's correction bias
                    and every norm, bias and router gate of this model's real layers by name,
                    each verified.
    conventional and explicit keep the current entries that pass and add the entries the
    headers require, so their result is correct too; when what they add changes nothing in how
    vLLM loads the model, the proposal says so (same result as checkpoint).
"""

from servecheck.fix.entries import EntryVerdict, group_verdicts
from servecheck.fix.facts import FIXABLE_CODES, STRATEGIES, FixError, IgnoreContext
from servecheck.fix.outcome import FixOutcome, prepare, write
from servecheck.fix.propose import FixProposal, propose

__all__ = [
    "FIXABLE_CODES",
    "STRATEGIES",
    "EntryVerdict",
    "FixError",
    "FixOutcome",
    "FixProposal",
    "IgnoreContext",
    "group_verdicts",
    "prepare",
    "propose",
    "write",
]
