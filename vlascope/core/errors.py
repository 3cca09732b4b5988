"""Errors the user can act on. The CLI prints them as one line; the GUI shows them in a dialog."""


class VLAScopeError(Exception):
    """Base of every error caused by bad input rather than a bug."""

    # A traceback or longer explanation behind the one-line message: the GUI shows it under
    # "Show Details", the CLI leaves it out. An attribute, not an argument, so the error
    # still pickles across worker processes.
    details: str = ""


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
    """A plugin that failed to import, to build its scene or policy, or while running (see
    ``plugins.guard``): the message names the plugin."""


class ObservationError(VLAScopeError, ValueError):
    """An observation or action of the wrong shape, size or type."""


class PolicyConnectionLost(VLAScopeError):
    """The policy's server or process went away (or stopped answering) in the middle of a
    job: the job ends, what it finished is kept (a recording keeps its steps), and the
    policy reconnects on its next call."""

    recording: str | None = None  # a rollout's partial recording, where one was kept


class CancelledError(VLAScopeError):
    """Long work stopped because the user asked for it."""


class CheckpointCodeRequired(PluginError):
    """A checkpoint that ships its own Python code, which loading it would run. VLAScope
    runs it only when the user says so: the CLI with ``--policy-option
    trust_remote_code=1``, the app after asking once per folder. An adapter raises this
    before it imports or runs anything from the folder."""

    def __init__(self, folder: str, family: str, why: str = ""):
        self.folder, self.family, self.why = str(folder), family, why
        super().__init__(
            f"{family}: the checkpoint {self.folder} ships its own code"
            f"{f' ({why})' if why else ''}, which loading it would run; VLAScope runs a "
            "checkpoint's code only when you allow it: if you trust this folder, pass "
            "--policy-option trust_remote_code=1 (the app asks)")


class OutputExistsError(VLAScopeError):
    """An output path that already holds a file (or folder) we may replace only when asked
    to (``--overwrite`` on the command line, a confirmation in the GUI)."""

    def __init__(self, path: object):
        self.path = path
        super().__init__(f"{path} already exists; not replacing it (--overwrite replaces it)")
