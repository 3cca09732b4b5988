"""Shared parts of the adapters that load real VLA checkpoints (the first-party plugins
``plugins/vlascope-transformers`` and ``plugins/vlascope-lerobot``): one hook contract over
any torch model, the visual-token hook point, seeded flow-matching noise, device and
precision choice, and the mapping from scene cameras and state to a model's inputs.

An adapter subclasses :class:`AdapterPolicy` and fills in the model-specific parts; the ISS
engine, SAE capture and the inspector then work on it unchanged.
"""

from .base import AdapterPolicy, pick_dtype, weights_fingerprint
from .hooks import ModuleHooks, TokenTap
from .images import resize_batch

__all__ = ["AdapterPolicy", "ModuleHooks", "TokenTap", "pick_dtype", "resize_batch",
           "weights_fingerprint"]
