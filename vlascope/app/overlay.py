"""The views' colour mapping: the same functions as core's (``vlascope.core.colormap``), so
the live viewer, screenshots and exported videos draw a map alike."""

from vlascope.core.colormap import blend, lookup_table, normalise

__all__ = ["blend", "lookup_table", "normalise"]
