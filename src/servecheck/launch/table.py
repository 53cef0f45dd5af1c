"""`vllm serve`'s arguments for one release, from knowledge/vllm_args.toml.

The table is extracted from each release's wheel by scripts/extract_vllm_args.py; a release
that was not extracted uses the nearest one that was (and says so).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from servecheck.knowledge import load_toml
from servecheck.versions import Release


@dataclass(frozen=True)
class ArgSpec:
    """One `vllm serve` option as the release's argparse defines it."""

    names: tuple[str, ...]
    dest: str
    kind: str  # see vllm_args.toml's header
    group: str
    value_type: str | None = None
    choices: tuple[Any, ...] | None = None
    nargs: int | str | None = None
    optional: bool = False  # "None" / "" parse to None
    append: bool = False
    flag_value: bool = True
    default: Any = None
    deprecated: bool = False

    @property
    def name(self) -> str:
        return self.names[0]

    @property
    def takes_value(self) -> bool:
        return self.kind not in ("flag", "bool")


@dataclass(frozen=True)
class ArgTable:
    """The arguments of one release and its parser's conventions."""

    release: str  # the extracted release standing in for the requested one
    requested: str
    specs: tuple[ArgSpec, ...]
    dash_o: str  # what -O3 becomes: "--optimization-level", "-O.level", "-O.mode" or ""
    enable_disable_pairs: bool  # 0.33+: --enable-x also accepts --disable-x (and back)
    dotted_human_ints: bool  # --x.y 80g parses the size

    @property
    def exact(self) -> bool:
        return Release.parse(self.release) == Release.parse(self.requested)

    @functools.cached_property
    def by_option(self) -> dict[str, ArgSpec]:
        """Every option string, including the --no-x and --enable/--disable partners."""
        out: dict[str, ArgSpec] = {}
        for spec in self.specs:
            for name in spec.names:
                out[name] = spec
            if spec.kind == "bool":
                for name in spec.names:
                    if name.startswith("--"):
                        out.setdefault("--no-" + name[2:], spec)
                        partner = _partner(name) if self.enable_disable_pairs else None
                        if partner:
                            out.setdefault(partner, spec)
        return out

    @functools.cached_property
    def by_dest(self) -> dict[str, ArgSpec]:
        return {spec.dest: spec for spec in self.specs}

    def negates(self, option: str, spec: ArgSpec) -> bool:
        """Whether `option` sets a boolean argument to False."""
        if option in spec.names:
            return False
        if option.startswith("--no-"):
            return True
        return bool(self.enable_disable_pairs and _partner(option) in spec.names)


def _partner(name: str) -> str | None:
    for a, b in (("--enable-", "--disable-"), ("--disable-", "--enable-")):
        if name.startswith(a):
            return b + name[len(a) :]
    return None


@functools.cache
def _data() -> dict[str, Any]:
    return load_toml("vllm_args.toml")


def extracted_releases() -> list[str]:
    return list(_data()["releases"])


def nearest_release(requested: str) -> str:
    """The extracted release nearest to `requested` (the newest on a tie)."""
    wanted = _scalar(Release.parse(requested))
    known = extracted_releases()
    return min(known, key=lambda r: (abs(_scalar(_key(r)) - wanted), -_scalar(_key(r))))


@functools.cache
def arg_table(requested: str) -> ArgTable:
    """`vllm serve`'s arguments as release `requested` (or the nearest extracted) defines them."""
    release = nearest_release(requested)
    key = _key(release)
    specs = tuple(_spec(row) for row in _data()["arg"] if _within(row, key))
    parser = next(row for row in _data()["parser"] if _within(row, key))
    return ArgTable(
        release=release,
        requested=requested,
        specs=specs,
        dash_o=parser["dash_o"],
        enable_disable_pairs=bool(parser["enable_disable_pairs"]),
        dotted_human_ints=bool(parser["dotted_human_ints"]),
    )


def _key(release: str) -> Release:
    return Release.parse(release)


def _within(row: dict[str, Any], key: Release) -> bool:
    return _key(row["from"]) <= key <= _key(row["to"])


def _scalar(v: Release) -> int:
    a, b, c, d = (*v.parts, 0)[:4]
    return ((a * 1000 + b) * 1000 + c) * 1000 + d


def _spec(row: dict[str, Any]) -> ArgSpec:
    choices = row.get("choices")
    return ArgSpec(
        names=tuple(row["names"]),
        dest=row["dest"],
        kind=row["kind"],
        group=row.get("group", ""),
        value_type=row.get("value_type"),
        choices=tuple(choices) if choices is not None else None,
        nargs=row.get("nargs"),
        optional=bool(row.get("optional", False)),
        append=bool(row.get("append", False)),
        flag_value=bool(row.get("flag_value", True)),
        default=row.get("default"),
        deprecated=bool(row.get("deprecated", False)),
    )
