"""The reference VLA trained on MetaWorld MT10 (``vlascope train-reference --scene metaworld
--tasks mt10``), shipped as this package's data (``weights/reference-metaworld``)."""

from __future__ import annotations

from vlascope.policies.reference.policy import ReferencePolicy, shipped_weights

NAME = "reference-metaworld"


def make_reference_metaworld(**options) -> ReferencePolicy:
    return ReferencePolicy(name=NAME, shipped=shipped_weights(NAME, __package__), **options)
