"""Exceptions. InputError is bad usage or bad input: the CLI prints its one-line message and exits 2."""


class SimmineError(Exception):
    """Base class of simmine's own errors."""


class InputError(SimmineError, ValueError):
    """Bad usage or bad input; the message names the file, row or column and what is wrong."""


class BackendUnavailable(InputError):
    """A backend asked for by name cannot run here."""
