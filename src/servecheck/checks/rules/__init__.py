"""Importing this package registers every rule."""

from servecheck.checks.rules import checkpoint, quant_config, resolution  # noqa: F401
