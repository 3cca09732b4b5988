"""The built-in tabletop suite: MuJoCo, generated assets, no downloads."""

from .scene import TabletopScene

__all__ = ["TabletopScene"]
