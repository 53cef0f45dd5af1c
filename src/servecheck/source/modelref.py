"""What a MODEL argument names: a local path, or a Hub repo `org/name[@revision]` /
`hf://org/name[@revision]`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from servecheck.errors import InputError

HF_SCHEME = "hf://"
# huggingface_hub utils/_validators.py validate_repo_id: word characters, '-', '.', at most
# 96 characters, no '--' or '..', not starting or ending with '-' or '.'.
_NAME = r"[A-Za-z0-9_](?:[\w.-]*[A-Za-z0-9_])?"
_REPO_ID = re.compile(rf"^{_NAME}/{_NAME}$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True)
class HubRef:
    """A model repo on the Hub, at `revision` (None: its default branch)."""

    repo_id: str
    revision: str | None = None

    @property
    def pinned(self) -> bool:
        """True when the revision is a full commit sha (immutable)."""
        return self.revision is not None and bool(_COMMIT.match(self.revision))

    def __str__(self) -> str:
        return f"{self.repo_id}@{self.revision}" if self.revision else self.repo_id


def is_commit(revision: str) -> bool:
    return bool(_COMMIT.match(revision))


def hub_ref(model: str, revision: str | None = None) -> HubRef | None:
    """The Hub repo `model` names, or None when it cannot be one (then it is a path).

    `revision` (a --revision option) wins over an `@revision` suffix only when they agree."""
    text = model[len(HF_SCHEME) :] if model.startswith(HF_SCHEME) else model
    repo_id, sep, rev = text.partition("@")
    repo_id = repo_id.strip("/") if model.startswith(HF_SCHEME) else repo_id
    if not _REPO_ID.match(repo_id) or "--" in repo_id or ".." in repo_id or len(repo_id) > 96:
        if model.startswith(HF_SCHEME):
            raise InputError(
                f"{model!r} is not a Hub model id: expected hf://org/name or hf://org/name@revision"
            )
        return None
    if sep and not rev:
        raise InputError(f"{model!r}: nothing after '@'; give a branch, tag or commit")
    if revision and rev and revision != rev:
        raise InputError(f"{model!r} names revision {rev!r} but --revision is {revision!r}")
    return HubRef(repo_id, rev or revision or None)


def looks_like_path(model: str) -> bool:
    """True for arguments that can only be paths (./x, /x, ~/x, x.json, a Windows drive)."""
    return (
        model.startswith((".", "/", "~"))
        or model.endswith(".json")
        or bool(re.match(r"^[A-Za-z]:[\\/]", model))
        or Path(model).exists()
    )
