"""`python -m servecheck`: the same command line as the `servecheck` script."""

from servecheck.cli import entry

entry()
