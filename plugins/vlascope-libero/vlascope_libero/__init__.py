"""LIBERO scenes as a VLAScope scene plugin (see README.md in this folder)."""

from .scene import STANDARD_SUITES, LiberoScene

__all__ = ["STANDARD_SUITES", "LiberoScene"]
