"""The reference VLA trained on MetaWorld MT10 (``vlascope train-reference --scene metaworld
--tasks mt10``), shipped beside the tabletop models in ``resources/policies/``."""

from __future__ import annotations

from vlascope.policies.reference.policy import ReferencePolicy

NAME = "reference-metaworld"


def make_reference_metaworld(**options) -> ReferencePolicy:
    return ReferencePolicy(name=NAME, **options)
