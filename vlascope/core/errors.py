"""Errors the user can act on. The CLI prints them as one line; the GUI shows them in a dialog."""


class VLAScopeError(Exception):
    """Base of every error caused by bad input rather than a bug."""


class UnknownNameError(VLAScopeError, KeyError):
    """A task, variant, camera, scene or policy name that does not exist."""

    def __init__(self, kind: str, name: str, known: list[str] | tuple[str, ...]):
        self.kind, self.name, self.known = kind, name, list(known)
        super().__init__(f"unknown {kind} '{name}' (known: {', '.join(self.known) or 'none'})")

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return self.args[0]


class EpisodeFormatError(VLAScopeError):
    """An episode file that is truncated, corrupt, foreign or of an unsupported schema."""


class PluginError(VLAScopeError):
    """A plugin that failed to import or to build its scene or policy."""


class ObservationError(VLAScopeError, ValueError):
    """An observation or action of the wrong shape, size or type."""


class CancelledError(VLAScopeError):
    """Long work stopped because the user asked for it."""


class OutputExistsError(VLAScopeError):
    """An output path that already holds a file (or folder) we may replace only when asked
    to (``--overwrite`` on the command line, a confirmation in the GUI)."""

    def __init__(self, path: object):
        self.path = path
        super().__init__(f"{path} already exists; not replacing it (--overwrite replaces it)")
