"""Hugging Face settings read from the environment at call time.

huggingface_hub reads these once, when it is imported (constants.py); servecheck reads them
again on every call, with the same names and defaults, so one process can check models
against several caches or endpoints (and the tests can point each check at its own).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

# huggingface_hub constants.py: _HF_DEFAULT_ENDPOINT, DEFAULT_REVISION, _is_true.
DEFAULT_ENDPOINT = "https://huggingface.co"
DEFAULT_REVISION = "main"
_TRUE = {"1", "ON", "YES", "TRUE"}


def _is_true(value: str | None) -> bool:
    return value is not None and value.upper() in _TRUE


def _cache_home() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")


@dataclass(frozen=True)
class HubSettings:
    endpoint: str
    hub_cache: Path  # the Hugging Face cache (models--org--name folders)
    servecheck_cache: Path  # servecheck's header cache
    offline: bool
    timeout: float  # seconds per request
    retries: int  # retries of a request answered 429 / 5xx or timed out
    retry_wait: float  # first wait between retries, doubled each time (at most 8 s)


def settings(offline: bool | None = None) -> HubSettings:
    """The settings in force now; `offline` overrides HF_HUB_OFFLINE when given."""
    env = os.environ
    # huggingface_hub constants.py: HF_HOME, HF_HUB_CACHE (HUGGINGFACE_HUB_CACHE), ENDPOINT,
    # HF_HUB_OFFLINE (TRANSFORMERS_OFFLINE), HF_HUB_DOWNLOAD_TIMEOUT.
    hf_home = Path(os.path.expandvars(env.get("HF_HOME") or _cache_home() / "huggingface"))
    hub_cache = env.get("HF_HUB_CACHE") or env.get("HUGGINGFACE_HUB_CACHE") or hf_home / "hub"
    own = env.get("SERVECHECK_CACHE_DIR") or _cache_home() / "servecheck"
    if offline is None:
        offline = _is_true(env.get("HF_HUB_OFFLINE") or env.get("TRANSFORMERS_OFFLINE"))
    return HubSettings(
        endpoint=(env.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/"),
        hub_cache=Path(os.path.expanduser(os.path.expandvars(str(hub_cache)))),
        servecheck_cache=Path(os.path.expanduser(str(own))),
        offline=offline,
        timeout=_number(env.get("HF_HUB_DOWNLOAD_TIMEOUT"), 10.0),
        retries=int(_number(env.get("SERVECHECK_HUB_RETRIES"), 5)),
        retry_wait=_number(env.get("SERVECHECK_HUB_RETRY_WAIT"), 1.0),
    )


def _number(text: str | None, default: float) -> float:
    try:
        return float(text) if text else default
    except ValueError:
        return default


def repo_folder(repo_id: str) -> str:
    """The cache folder name of a model repo (huggingface_hub file_download.py
    repo_folder_name): models--org--name."""
    return "models--" + repo_id.replace("/", "--")
