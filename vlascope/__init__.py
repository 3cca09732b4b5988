"""VLAScope: an inspector for vision-language-action robot policies."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("vlascope")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
