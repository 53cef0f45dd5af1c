"""Errors the CLI turns into one sentence: InputError ("bad input or usage", exit code 2) and
WriteError (a file could not be written and nothing of the user's changed, exit code 1)."""


class InputError(Exception):
    """The input cannot be read or understood (missing file, malformed JSON, corrupt header)."""


class WriteError(Exception):
    """Writing failed (read-only folder, full disk, file too large, a folder in the way); every
    file that existed before is as it was."""
