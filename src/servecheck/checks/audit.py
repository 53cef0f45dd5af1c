"""Audit a checkpoint's tensors (headers only) against the inventory and its resolution."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from operator import eq, itemgetter

from servecheck.checks.expected import Spec, expert_specs, per_expert, prefix_specs
from servecheck.core import index_in_name
from servecheck.findings.collect import Collector
from servecheck.findings.registry import Finding, Severity
from servecheck.findings.rules import checkpoint as rules
from servecheck.model.config import ModelConfig
from servecheck.model.inventory import LM_HEAD, ROUTER, Inventory, Module
from servecheck.quant.resolve import Resolution, ResolutionResult
from servecheck.quant.spec import find_quant_config
from servecheck.source.local import Checkpoint
from servecheck.source.safetensors import TensorInfo
from servecheck.versions import Release, VllmVersion, feature

# decoder layers, also under a multimodal model's language_model prefix
_LAYER = re.compile(r"^(?:language_model\.)?model\.layers\.(\d+)\.")
# vLLM 0.33 quantization/base_config.py _ignore_unexpected_suffixes (+ rotary buffers and
# g_idx, which every loader drops): tensors no loader complains about.
ALWAYS_DROPPED = (
    ".q_scale",
    ".k_scale",
    ".v_scale",
    ".q_zero_point",
    ".k_zero_point",
    ".v_zero_point",
    ".g_idx",
    "rotary_emb.inv_freq",
    "rotary_emb.cos_cached",
    "rotary_emb.sin_cached",
)
# vLLM 0.33 models/glm4_moe.py etc.: model files named in citations.
MODEL_FILES = {
    "Glm4MoeForCausalLM": "glm4_moe.py",
    "DeepseekV3ForCausalLM": "deepseek_v2.py",
    "DeepseekV2ForCausalLM": "deepseek_v2.py",
    "MixtralForCausalLM": "mixtral.py",
    "Qwen3MoeForCausalLM": "qwen3_moe.py",
    "LlamaForCausalLM": "llama.py",
    "MistralForCausalLM": "llama.py",
    "Qwen2ForCausalLM": "qwen2.py",
    "Qwen3ForCausalLM": "qwen3.py",
}


@dataclass(frozen=True)
class AuditResult:
    findings: tuple[Finding, ...]
    # Bytes stored per module (from headers); absent modules are not in the map.
    module_bytes: Mapping[str, int] = field(default_factory=dict)
    unowned_bytes: int = 0


@dataclass
class _Owner:
    """Who owns a checkpoint prefix, and what it must hold."""

    module: Module
    specs: dict[str, Spec]  # suffix -> spec
    found: int = 0  # how many of its expected tensors are stored (over all experts)


class _Index:
    """Checkpoint prefix -> owner, with experts matched by pattern instead of enumeration."""

    def __init__(self, inv: Inventory, by_res: Mapping[str, Resolution]):
        self.prefixes: dict[str, _Owner] = {}
        self.experts: dict[str, tuple[Module, dict[str, _Owner]]] = {}
        for m in inv.modules:
            res = by_res[m.name]
            if per_expert(m):
                projs = {
                    proj: _Owner(m, {s.suffix: s for s in specs})
                    for proj, specs in expert_specs(m, res).items()
                }
                self.experts[m.name] = (m, projs)
                continue
            for prefix, specs in prefix_specs(m, res).items():
                owner = self.prefixes.setdefault(prefix, _Owner(m, {}))
                owner.specs.update({s.suffix: s for s in specs})
            self.prefixes.setdefault(m.ckpt_prefix, _Owner(m, {}))

    def kinds(self) -> Iterator[tuple[_Owner, Spec, list[str]]] | None:
        """Every (owner, spec) pair with the tensor names it expects, each expert's spelled
        out. None when a non-expert prefix is also spelled like an expert's projection (the
        per-tensor pass settles which owner takes such a name)."""
        for prefix in self.prefixes:
            head, _, _ = prefix.rpartition(".")
            if head.rpartition(".")[0] in self.experts:
                return None
        return self._kinds()

    def _kinds(self) -> Iterator[tuple[_Owner, Spec, list[str]]]:
        numbers: list[str] = []  # "0", "1", ... spelled once for every experts module
        for m, projs in self.experts.values():
            assert m.experts is not None
            numbers += map(str, range(len(numbers), m.experts.num_experts))
            experts = numbers[: m.experts.num_experts]
            head = f"{m.name}."
            for proj, owner in projs.items():
                for suffix, spec in owner.specs.items():
                    tail = f".{proj}.{suffix}"
                    yield owner, spec, [head + e + tail for e in experts]
        for prefix, owner in self.prefixes.items():
            for suffix, spec in owner.specs.items():
                yield owner, spec, [f"{prefix}.{suffix}"]

    def lookup(self, prefix: str) -> _Owner | None:
        owner = self.prefixes.get(prefix)
        if owner is not None:
            return owner
        # "<experts module>.<e>.<projection>"
        head, _, proj = prefix.rpartition(".")
        base, _, expert = head.rpartition(".")
        hit = self.experts.get(base)
        number = index_in_name(expert)
        if hit is None or number is None:
            return None
        module, projs = hit
        assert module.experts is not None
        if number >= module.experts.num_experts:
            return None
        return projs.get(proj)


# vLLM 0.27 model_loader/bitsandbytes_loader.py _is_4bit_weight_name / _is_8bit_weight_name:
# the quantization state bitsandbytes saves beside each weight, which the loader consumes
BNB_4BIT_STATE = ("absmax", "quant_map", "nested_absmax", "nested_quant_map", "bitsandbytes")


def bnb_state_owner(name: str) -> str | None:
    """The checkpoint prefix of the layer a bitsandbytes quantization-state tensor belongs to
    (None: not a quantization-state tensor)."""
    if name.lower().endswith(".weight_format"):
        return name.rsplit(".", 1)[0]
    head, sep, tail = name.partition(".weight.")
    if sep and any(s in tail.rsplit(".", 1)[-1] for s in BNB_4BIT_STATE):
        return head
    return None


def audit(
    ckpt: Checkpoint,
    cfg: ModelConfig,
    inv: Inventory,
    resolved: ResolutionResult,
    version: VllmVersion,
) -> AuditResult:
    ver = version.release
    findings: list[Finding] = []
    findings += _file_findings(ckpt, version)
    tensors = ckpt.tensors or {}
    if inv.ckpt_prefixes:
        # vLLM's hf_to_vllm_mapper renames checkpoint prefixes (multimodal models)
        tensors = {inv.vllm_name(n): t for n, t in tensors.items()}
    by_res = resolved.by_name()
    index = _Index(inv, by_res)

    c = Collector()
    contradicted: set[str] = set()  # modules whose weight dtype contradicts their scheme
    module_bytes: Counter[str] = Counter()
    unowned = 0
    unowned_names: list[str] = []
    router_quant: list[str] = []
    prefixes = index.prefixes
    bnb = str((ckpt.config.get("quantization_config") or {}).get("quant_method")) == "bitsandbytes"
    clean = None if bnb else _clean_bytes(index, tensors, by_res)
    if clean is not None:
        module_bytes.update(clean)
    for name, t in tensors.items() if clean is None else ():
        state_of = bnb_state_owner(name) if bnb else None
        if state_of is not None:
            # bitsandbytes quantization state: the module's bytes, consumed by the loader
            owner = prefixes.get(state_of) or index.lookup(state_of)
            if owner is not None:
                module_bytes[owner.module.name] += t.nbytes
                continue
        prefix, _, suffix = name.rpartition(".")
        owner = prefixes.get(prefix) or index.lookup(prefix)
        if owner is None:
            unowned += t.nbytes
            unowned_names.append(name)
            _unexpected(c, name, inv, ver)
            continue
        m = owner.module
        module_bytes[m.name] += t.nbytes
        spec = owner.specs.get(suffix)
        res = by_res[m.name]
        if spec is None:
            if m.kind == ROUTER and not m.receives_quant_config:
                router_quant.append(name)
            elif res.error is None:
                _unexpected(c, name, inv, ver, module=m)
            continue
        owner.found += 1
        if res.error is not None or spec.role == "estimate":
            continue
        if spec.dtypes is not None and t.dtype not in spec.dtypes:
            if m.kind == ROUTER and not m.receives_quant_config and t.dtype.startswith("F8"):
                router_quant.append(name)
            elif spec.role == "weight":
                contradicted.add(m.name)
                want = res.scheme or "unquantized (16-bit)"
                c.add(
                    rules.DtypeContradictsScheme,
                    m.name,
                    key=(t.dtype, want),
                    stored=t.dtype,
                    expected=want,
                    ver=ver,
                )
            continue
        if spec.shape is not None and t.shape != spec.shape:
            c.add(
                rules.ShapeMismatch, name, stored=list(t.shape), expected=list(spec.shape), ver=ver
            )

    stored_layers = {
        m.layer for m in inv.modules if m.layer is not None and module_bytes.get(m.name)
    } | _stored_layers(unowned_names)
    base_layers = set(range(cfg.num_layers))
    mtp_layers = set(range(cfg.num_layers, cfg.num_layers + cfg.num_nextn_predict_layers))
    missing_layers = sorted(base_layers - stored_layers)
    if missing_layers or (stored_layers - base_layers - mtp_layers):
        stored = len(stored_layers & base_layers) + len(stored_layers - base_layers - mtp_layers)
        findings.append(
            rules.LayerCountMismatch.make(
                [f"model.layers.{i}" for i in missing_layers],
                expected=cfg.num_layers,
                stored=stored,
                ver=ver,
            )
        )
    if mtp_layers and not (stored_layers & mtp_layers):
        findings.append(rules.MtpLayersMissing.make(n=cfg.num_nextn_predict_layers, ver=ver))

    if router_quant:
        findings.append(_router_finding(router_quant, inv, ver))
    findings += c.findings()
    if ckpt.shard_problems:
        # Missing layers, tensors and heads would all be consequences of the unreadable shards.
        findings = [f for f in findings if f.code == rules.UnreadableShard.code]
        return AuditResult(tuple(findings), dict(module_bytes), unowned)
    skip = set(missing_layers) | mtp_layers
    quantized = find_quant_config(ckpt.config, ckpt.hf_quant_config)[0] is not None
    findings += _missing(index, tensors, by_res, skip, contradicted, quantized, ver)
    findings += _tied(cfg, tensors, ver)
    return AuditResult(tuple(findings), dict(module_bytes), unowned)


def _clean_bytes(
    index: _Index, tensors: Mapping[str, TensorInfo], by_res: Mapping[str, Resolution]
) -> Counter[str] | None:
    """The per-tensor pass of `audit` done per kind of tensor (an owner and one of its specs;
    a few hundred kinds in a 10^5-tensor MoE checkpoint), for a checkpoint whose every tensor
    is one the model expects: each kind's names are looked up together and their distinct
    dtypes and shapes judged once. Returns the bytes per module, with each owner's `found`
    counted, when every stored tensor is expected and passes; None (nothing counted)
    otherwise, and the per-tensor pass then names each problem."""
    kinds = index.kinds()
    if kinds is None:
        return None
    module_bytes: Counter[str] = Counter()
    found: list[tuple[_Owner, int]] = []
    stored = 0
    for owner, spec, names in kinds:
        hits = list(map(tensors.get, names))
        if None in hits:
            hits = [t for t in hits if t is not None]
            if not hits:
                continue
        res = by_res[owner.module.name]
        if res.error is None and spec.role != "estimate":
            if spec.dtypes is not None and not spec.dtypes.issuperset(map(_DTYPE, hits)):
                return None
            if spec.shape is not None and set(map(_SHAPE, hits)) != {spec.shape}:
                return None
        stored += len(hits)
        found.append((owner, len(hits)))
        module_bytes[owner.module.name] += sum(map(_NBYTES, hits))
    if stored != len(tensors):  # some stored tensor is not one the model expects
        return None
    for owner, n in found:
        owner.found += n
    return module_bytes


_DTYPE = itemgetter(1)  # TensorInfo: name, dtype, shape, nbytes, shard
_SHAPE = itemgetter(2)
_NBYTES = itemgetter(3)
_SHARD = itemgetter(4)


def _stored_layers(names: Iterable[str]) -> set[int]:
    """Decoder layer indices present, from names starting `model.layers.<i>.`."""
    layers: set[str] = set()
    for name in names:
        if name.startswith("model.layers."):
            layers.add(name[13 : name.find(".", 13)])
    found = (index_in_name(x) for x in layers)
    return {i for i in found if i is not None}


# What the safetensors library raises when vLLM opens such a shard (measured on vLLM 0.24:
# tests/data/gpu_truth/llama-truncated-header.json); None where not measured.
SAFETENSORS_ERRORS = {
    "header_truncated": "Error while deserializing header: invalid header length",
}


def _file_findings(ckpt: Checkpoint, version: VllmVersion) -> list[Finding]:
    ver = version.release
    out = [
        rules.UnreadableShard.make(
            [p.file],
            detail=p.message,
            file=p.file,
            vllm_text=SAFETENSORS_ERRORS.get(p.kind, ""),
            ver=ver,
        )
        for p in ckpt.shard_problems
    ]
    if ckpt.index_missing_files:
        files = list(ckpt.index_missing_files)
        # vLLM 0.33 weight_utils.py filter_duplicate_safetensors_files raises; 0.11/0.24 only
        # filter the file list (feature index_missing_shard_error).
        if version.feature("index_missing_shard_error"):
            out.append(
                rules.IndexNamesMissingShard.make(
                    files,
                    n=len(files),
                    files=files,
                    consequence="",
                    vllm_text=f"Weight files referenced in index but missing: {set(files)}",
                    ver=ver,
                )
            )
        else:
            out.append(
                rules.IndexNamesMissingShard.make(
                    files,
                    n=len(files),
                    files=files,
                    severity=Severity.WARNING,
                    consequence=f"; vLLM {ver} skips them, so their tensors are missing",
                    vllm_text="",
                    ver=ver,
                )
            )
    if ckpt.files_outside_index:
        files = list(ckpt.files_outside_index)
        out.append(rules.ShardOutsideIndex.make(files, n=len(files), files=files, ver=ver))
    if ckpt.index_weight_map is not None and ckpt.tensors is not None:
        wrong = _index_disagrees(ckpt.index_weight_map, ckpt.tensors, ckpt.index_missing_files)
        if wrong:
            out.append(rules.IndexWeightMapMismatch.make(wrong, n=len(wrong), ver=ver))
    if ckpt.duplicate_tensors:
        dups = list(ckpt.duplicate_tensors)
        out.append(rules.DuplicateTensor.make(dups, n=len(dups), example=dups[0], ver=ver))
    return out


def _index_disagrees(
    weight_map: Mapping[str, str], tensors: Mapping[str, TensorInfo], missing: Iterable[str]
) -> list[str]:
    """Tensors the index places in a file that does not hold them (files named but missing
    aside). An index that names exactly the stored tensors in their files, the usual case, is
    recognised in one C-level pass."""
    if len(weight_map) == len(tensors) and all(
        map(eq, map(weight_map.get, tensors), map(_SHARD, tensors.values()))
    ):
        return []
    missing_files = set(missing)
    return [
        name
        for name, file in weight_map.items()
        if file not in missing_files and (name not in tensors or tensors[name].shard != file)
    ]


def _unexpected(
    c: Collector, name: str, inv: Inventory, ver: Release, module: Module | None = None
) -> None:
    """A tensor with no parameter: does the loader drop it, skip it, or raise?"""
    rules_ = inv.loader
    layer = _LAYER.match(name)
    number = index_in_name(layer.group(1)) if layer else None
    if (
        number is not None
        and rules_.skip_layers_from is not None
        and number >= rules_.skip_layers_from
    ):
        return  # MTP / speculative layers are skipped by the base model's loader
    if name.endswith(ALWAYS_DROPPED) or name.endswith(rules_.ignored_suffixes):
        fix = (
            "Harmless."
            if name.endswith((".bias", "inv_freq"))
            else "The module runs unquantized while its checkpoint weights look quantized: make "
            "the quantization config target it."
        )
        c.add(rules.TensorSilentlyDropped, name, key=fix, fix_text=fix, ver=ver)
        return
    manual = _manual_loader(inv.architecture, ver)
    if manual:
        text = f"KeyError: '{name}'"
        loader = f"models/{MODEL_FILES.get(inv.architecture, 'the model file')} load_weights"
    else:
        prefix = name.rsplit(".", 1)[0]
        owner = module.name if module else prefix.rsplit(".", 1)[0]
        text = (
            f"There is no module or parameter named '{prefix if module is None else name}' "
            f"in {inv.architecture}. The available parameters belonging to {owner} are: ..."
        )
        loader = "AutoWeightsLoader._load_module"
    fix = (
        "Remove the tensor, or make the config build a parameter for it (a quantized module "
        "must not be ignored)."
        if module
        else "Remove the tensor or use a config that describes this checkpoint."
    )
    c.add(
        rules.UnexpectedTensor,
        name,
        key=manual,
        fix_text=fix,
        vllm_text=text,
        loader=loader,
        exception="KeyError" if manual else "ValueError",
        ver=ver,
    )


def _manual_loader(arch: str, ver: Release) -> bool:
    archs = feature(ver, "manual_weight_loaders")
    return "*" in archs or arch in archs


def _router_finding(names: list[str], inv: Inventory, ver: Release) -> Finding:
    scales = [n for n in names if not n.endswith(".weight")]
    example = scales[0] if scales else names[0]
    if _manual_loader(inv.architecture, ver):
        text = f"KeyError: '{example}'"
    else:
        owner = example.rsplit(".", 1)[0]
        text = (
            f"ValueError: There is no module or parameter named {example!r} in "
            f"{inv.architecture}. The available parameters belonging to {owner} (GateLinear) "
            f"are: {{'{owner}.weight', ...}}"
        )
    layers = sorted({n.rsplit(".", 1)[0] for n in names})
    return rules.QuantizedRouterGate.make(
        layers,
        count=len(layers),
        n=len(layers),
        arch=inv.architecture,
        example=example,
        model_file=MODEL_FILES.get(inv.architecture, ""),
        vllm_text=text,
        exception="KeyError" if _manual_loader(inv.architecture, ver) else "ValueError",
        ver=ver,
    )


def _missing(
    index: _Index,
    tensors: Mapping[str, TensorInfo],
    by_res: Mapping[str, Resolution],
    skip_layers: set[int],
    contradicted: set[str],
    quantized: bool,
    ver: Release,
) -> list[Finding]:
    """Expected tensors not stored, leaving out what other findings already explain."""

    def skipped(m: Module, spec: Spec) -> bool:
        return (
            by_res[m.name].error is not None
            or m.kind == LM_HEAD  # K011 explains a missing head
            or spec.role in ("bias", "estimate")
            or m.name in contradicted
            or (m.layer is not None and m.layer in skip_layers)
        )

    missing = []
    for prefix, owner in index.prefixes.items():
        if owner.found == len(owner.specs):
            continue  # everything it needs is stored
        for spec in owner.specs.values():
            name = f"{prefix}.{spec.suffix}"
            if name not in tensors and not skipped(owner.module, spec):
                missing.append(name)
    for m, projs in index.experts.values():
        assert m.experts is not None
        if all(o.found == len(o.specs) * m.experts.num_experts for o in projs.values()):
            continue
        for e in range(m.experts.num_experts):
            for proj, owner in projs.items():
                for spec in owner.specs.values():
                    name = f"{m.name}.{e}.{proj}.{spec.suffix}"
                    if name not in tensors and not skipped(m, spec):
                        missing.append(name)
    if not missing:
        return []
    # vLLM 0.33 model_loader/default_loader.py load_weights: the uninitialized-weights check
    # runs only when the model is not quantized (same in 0.24, measured).
    if quantized:
        consequence = "vLLM loads quantized models without checking, so these stay uninitialized"
        text, exception = "", None
    else:
        consequence = "vLLM stops the load"
        text = f"Following weights were not initialized from checkpoint: {{{missing[0]!r}, ...}}"
        exception = "ValueError"
    return [
        rules.MissingTensor.make(
            missing,
            count=len(missing),
            n=len(missing),
            example=missing[0],
            consequence=consequence,
            vllm_text=text,
            exception=exception,
            ver=ver,
        )
    ]


def _tied(cfg: ModelConfig, tensors: Mapping[str, TensorInfo], ver: Release) -> list[Finding]:
    # vLLM 0.33 models/utils.py AutoWeightsLoader: a tied head aliases embed_tokens and the
    # stored lm_head.weight is skipped (_get_tied_embedding_params); an untied head must load.
    has_head = "lm_head.weight" in tensors or "lm_head.weight_packed" in tensors
    if cfg.tie_word_embeddings and has_head:
        return [
            rules.TiedEmbeddingsMismatch.make(
                ["lm_head.weight"],
                severity=Severity.WARNING,
                detail=(
                    "tie_word_embeddings is true but lm_head.weight is stored; vLLM ties the "
                    "head to embed_tokens and skips the stored one"
                ),
                fix_text="Set tie_word_embeddings to false if the stored head is meant to be used.",
                ver=ver,
            )
        ]
    if not cfg.tie_word_embeddings and not has_head:
        return [
            rules.TiedEmbeddingsMismatch.make(
                ["lm_head.weight"],
                detail="tie_word_embeddings is false but the checkpoint stores no lm_head.weight",
                fix_text="Set tie_word_embeddings to true if the head is tied to the embeddings.",
                ver=ver,
            )
        ]
    return []
