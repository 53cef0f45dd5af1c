"""A progress bar on stderr while safetensors headers are fetched from the Hub: shards read
out of all, and header bytes received. Shown on a terminal only, never with --quiet."""

from __future__ import annotations

import sys
from typing import Any


class HeaderProgress:
    """source.hub.FetchProgress drawn with rich (imported when a fetch starts)."""

    def __init__(self) -> None:
        self._bar: Any = None
        self._task: Any = None
        self._bytes = 0

    def start(self, shards: int) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self._bar = Progress(
            TextColumn("reading safetensors headers"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("shards, {task.fields[size]}"),
            console=Console(stderr=True),
            transient=True,
        )
        self._bar.start()
        self._task = self._bar.add_task("headers", total=shards, size="0 KB")

    def advance(self, nbytes: int) -> None:
        if self._bar is None:
            return
        self._bytes += nbytes
        self._bar.update(self._task, advance=1, size=f"{self._bytes / 1e6:,.1f} MB")

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


def header_progress(quiet: bool) -> HeaderProgress | None:
    """A progress bar for stderr, or None when stderr is not a terminal or with --quiet."""
    if quiet or not sys.stderr.isatty():
        return None
    return HeaderProgress()
