"""MetaWorld (Yu et al., 2019; Farama Foundation) as a VLAScope scene plugin."""

from .tasks import GROUPS, INSTRUCTIONS, MT10, MT50

__all__ = ["GROUPS", "INSTRUCTIONS", "MT10", "MT50"]
