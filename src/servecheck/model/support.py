"""Whether the chosen vLLM release serves a config's architecture, and with which class."""

from __future__ import annotations

from collections.abc import Sequence

from servecheck.findings.registry import Finding
from servecheck.findings.rules import architecture as rules
from servecheck.model.config import ModelConfig
from servecheck.model.inventory import ATTN_QKV, Inventory
from servecheck.model.registry import Lookup, Span, lookup

# vLLM 0.33 config/model.py _SUFFIX_TO_DEFAULTS: architecture suffixes in priority order;
# registry.py _normalize_arch swaps a name's suffix for each of them to find a registered base.
SUFFIXES = (
    "ForCausalLM",
    "ForConditionalGeneration",
    "ChatModel",
    "LMHeadModel",
    "ForTextEncoding",
    "EmbeddingModel",
    "ForSequenceClassification",
    "ForTokenClassification",
    "ForAudioClassification",
    "ForImageClassification",
    "ForVideoClassification",
    "ClassificationModel",
    "ForRewardModeling",
    "RewardModel",
    "Model",
)


def normalized(architecture: str, release: str) -> Lookup:
    """vLLM 0.33 registry.py _normalize_arch: the architecture, or a registered name with the
    same stem and another known suffix."""
    found = lookup(architecture, release)
    if found.supported:
        return found
    suffix = next((s for s in SUFFIXES if architecture.endswith(s)), None)
    if suffix is None:
        return found
    for repl in SUFFIXES:
        base = lookup(architecture.replace(suffix, repl), release)
        if base.supported:
            return base
    return found


def resolve_architecture(architectures: Sequence[str], release: str) -> Lookup:
    """The registry entry vLLM uses: the first of the config's architectures it serves
    (vLLM 0.33 registry.py inspect_model_cls), else the first architecture's lookup."""
    lookups = [normalized(a, release) for a in architectures]
    return next((lk for lk in lookups if lk.supported), lookups[0])


def support_findings(
    architectures: Sequence[str], config: dict, release: str, ver: str
) -> tuple[Lookup, list[Finding]]:
    """The registry's verdict on the config's architectures for vLLM `release`."""
    found = resolve_architecture(architectures, release)
    arch = architectures[0]
    if found.supported:
        span = found.span
        assert span is not None
        if span.transformers_backend:
            return found, [rules.TransformersBackend.make(arch=arch, served=span.cls, ver=ver)]
        return found, []
    if found.removed_after:
        return found, [
            rules.ArchitectureRemoved.make([arch], arch=arch, last=found.removed_after, ver=ver)
        ]
    if found.plugin:
        return found, [
            rules.ArchitectureMovedToPlugin.make([arch], arch=arch, url=found.plugin, ver=ver)
        ]
    auto_map = config.get("auto_map") if isinstance(config.get("auto_map"), dict) else {}
    model_code = next((v for k, v in auto_map.items() if k.startswith("AutoModel")), None)
    if model_code:
        finding = rules.CustomCodeArchitecture.make([arch], arch=arch, auto_map=model_code, ver=ver)
        return found, [finding]
    return found, [_not_supported(list(architectures), found, ver)]


def _not_supported(architectures: list[str], found: Lookup, ver: str) -> Finding:
    arch = architectures[0]
    later: Span | None = found.later
    earlier: Span | None = found.earlier
    if later is not None:
        since = f"; it is served from vLLM {later.first} on"
        fix = f"Use vLLM {later.first} or newer."
    elif earlier is not None:
        since = f"; vLLM {earlier.first} to {earlier.last} served it"
        fix = f"Use vLLM {earlier.last} or older."
    else:
        since = " (no vLLM release from 0.10.0 on lists it)"
        fix = (
            "Check the architecture name in config.json; if transformers implements it, try "
            "--model-impl transformers."
        )
    return rules.ArchitectureNotSupported.make(
        [arch], arch=arch, archs=repr(architectures), since=since, fix=fix, ver=ver
    )


def missing_sizes(cfg: ModelConfig, inventory: Inventory) -> list[Finding]:
    """A007 when the config leaves out sizes the inventory's modules need (they count as
    empty rather than a false OK)."""
    keys, what = [], []
    if cfg.num_heads <= 0 and any(m.kind == ATTN_QKV for m in inventory.modules):
        keys.append("num_attention_heads")
        what.append("the attention projections and KV cache")
    if any(m.is_linear and m.shards and m.out_features <= 0 for m in inventory.modules):
        keys.append("intermediate_size")
        what.append("the MLP projections")
    if not keys:
        return []
    return [
        rules.ConfigSizesMissing.make(
            keys=" / ".join(keys), what=" and ".join(what), arch=cfg.architecture
        )
    ]
