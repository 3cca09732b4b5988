"""VLAScope adapters for checkpoints loaded with Hugging Face transformers: native pi0 and
pi0.5, any VLM with a VLAScope action head, and OpenVLA-OFT (through the user's
openvla-oft install). See docs/adapters.md."""

from __future__ import annotations


def make_pi0(**options):
    from .pi0 import Pi0Policy

    return Pi0Policy(**options)


def make_pi05(**options):
    from .pi05 import Pi05Policy

    return Pi05Policy(**options)


def make_vlm_head(**options):
    from .vlm_head import VLMActionPolicy

    return VLMActionPolicy(**options)


def make_openvla_oft(**options):
    from .openvla_oft import OpenVLAOFTPolicy

    return OpenVLAOFTPolicy(**options)


def check_openvla_oft(weights=None, trust_remote_code=False, **_options) -> None:
    """In the app, before serving: the folder, and the user's word on its code."""
    from .openvla_oft import check_folder

    check_folder(weights, trust_remote_code)


for _factory in (make_pi0, make_pi05, make_vlm_head, make_openvla_oft):
    _factory.needs_weights = True  # no checkpoint ships: the app asks for a folder
# openvla-oft pins transformers 4.40 (a fork): it can only run in an environment of its own
make_openvla_oft.environment = "openvla-oft"
make_openvla_oft.before_serving = check_openvla_oft
