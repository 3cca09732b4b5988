"""SmolVLA at its published size (``lerobot/smolvla_base``) with random weights, written by
LeRobot's own ``save_pretrained`` and processor pipelines, so memory and speed can be
measured on a machine that cannot download the real checkpoint (benchmarks/full_size.py).

Every size below is written here, copied from the published files: SmolVLM2-500M-Video-
Instruct's ``config.json`` (the VLM) and ``lerobot/smolvla_base``'s ``config.json`` (three
256x256 cameras, a 6-number state and action); everything else is LeRobot 0.4.4's
``SmolVLAConfig`` defaults, which are smolvla_base's (16 of the VLM's 32 layers, an expert
0.75 as wide, chunks of 50, 10 flow steps, images padded to 512x512). The tokenizer is a
stand-in trained on the scenes' instructions (the weights' vocabulary keeps its published
49,280 rows); weights are stored in bfloat16 as published, and the adapter upcasts them to
its dtype (float32 on the CPU).

``python -m vlascope_lerobot.published OUT`` writes one (~0.9 GB).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from .compat import import_smolvla
from .tiny import smolvlm_tokenizer, write_smolvla_processors, write_smolvlm_files

# HuggingFaceTB/SmolVLM2-500M-Video-Instruct config.json (the vision tower's layer count
# and MLP width are SigLIP-base's, the config class defaults it relies on, written out)
SMOLVLM2_500M = {
    "scale_factor": 4, "image_token_id": 49190, "tie_word_embeddings": False,
    "text_config": {"model_type": "llama", "vocab_size": 49280, "hidden_size": 960,
                    "intermediate_size": 2560, "num_hidden_layers": 32,
                    "num_attention_heads": 15, "num_key_value_heads": 5, "head_dim": 64,
                    "max_position_embeddings": 8192, "rms_norm_eps": 1e-5,
                    "rope_theta": 100000, "tie_word_embeddings": False},
    "vision_config": {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
                      "num_attention_heads": 12, "image_size": 512, "patch_size": 16},
}
IMAGE_TOKENS = 64  # (512 / 16)^2 patches, pixel-shuffled by scale_factor 4 (x16 fewer)
# lerobot/smolvla_base config.json: its input and output features
CAMERAS = ("image", "image2", "image3")
CAMERA_SHAPE = (3, 256, 256)
STATE_DIM = ACTION_DIM = 6


def write_smolvlm2_500m(folder: str | Path) -> Path:
    """SmolVLM2-500M's config (published sizes), a stand-in tokenizer and its processor:
    what SmolVLA reads from its VLM folder (the weights live in the policy's file)."""
    from transformers import SmolVLMConfig

    folder = Path(folder)
    tokenizer = smolvlm_tokenizer()
    text = {**SMOLVLM2_500M["text_config"], "pad_token_id": tokenizer.pad_token_id}
    config = SmolVLMConfig(
        text_config=text, vision_config=dict(SMOLVLM2_500M["vision_config"]),
        scale_factor=SMOLVLM2_500M["scale_factor"],
        tie_word_embeddings=SMOLVLM2_500M["tie_word_embeddings"],
        # the stand-in tokenizer's <image> (published: 49190, in the real vocabulary)
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        pad_token_id=tokenizer.pad_token_id)
    write_smolvlm_files(folder, config, tokenizer, SMOLVLM2_500M["vision_config"]["image_size"],
                        IMAGE_TOKENS, splitting=True, longest_edge=2048)
    return folder


def smolvla_config(vlm_dir: str | Path, cameras: Sequence[str] = CAMERAS):
    """smolvla_base's SmolVLAConfig, its VLM read from ``vlm_dir``."""
    lr = import_smolvla()
    from lerobot.configs.types import FeatureType, PolicyFeature

    features = {f"observation.{c}": PolicyFeature(type=FeatureType.VISUAL, shape=CAMERA_SHAPE)
                for c in cameras}
    features["observation.state"] = PolicyFeature(type=FeatureType.STATE, shape=(STATE_DIM,))
    return lr["SmolVLAConfig"](
        vlm_model_name=str(vlm_dir), load_vlm_weights=False, input_features=features,
        output_features={"action": PolicyFeature(type=FeatureType.ACTION,
                                                 shape=(ACTION_DIM,))},
        device="cpu")


def build_smolvla(vlm_dir: str | Path, device: str = "cpu", seed: int = 0):
    """The policy object (``device="meta"``: shapes only, nothing allocated)."""
    lr = import_smolvla()
    config = smolvla_config(vlm_dir)
    torch.manual_seed(seed)
    with torch.device(device):
        return lr["SmolVLAPolicy"](config)


def write_published_smolvla(folder: str | Path, seed: int = 0) -> Path:
    """A random-weight smolvla_base in ``folder``: bfloat16 ``model.safetensors``, the VLM
    files in ``folder/vlm``, processors with identity statistics."""
    import_smolvla()  # first: LeRobot's package is registered without its __init__

    out = Path(folder)
    vlm = write_smolvlm2_500m(out / "vlm")
    policy = build_smolvla(vlm, seed=seed).to(torch.bfloat16)
    policy.save_pretrained(out)
    write_smolvla_processors(policy.config, out, STATE_DIM, ACTION_DIM)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m vlascope_lerobot.published OUT``"""
    import argparse
    import contextlib
    import io

    p = argparse.ArgumentParser(prog="python -m vlascope_lerobot.published",
                                description="write smolvla_base's size with random weights")
    p.add_argument("out")
    args = p.parse_args(argv)
    with contextlib.redirect_stdout(io.StringIO()):  # LeRobot prints as it builds
        out = write_published_smolvla(args.out)
    print(f"published-size SmolVLA (random weights) -> {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
