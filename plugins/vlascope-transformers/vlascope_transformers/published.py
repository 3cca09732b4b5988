"""pi0 and pi0.5 at their published sizes (``lerobot/pi0_base``, ``lerobot/pi05_base``) with
random weights, written by transformers' own ``save_pretrained``, so memory and speed can be
measured on a machine that cannot download the real checkpoints (benchmarks/full_size.py).

Every size is written here, copied from the published configurations (LeRobot's
``gemma_2b`` / ``gemma_300m`` variants and SigLIP So400m/14 at 224 px, as in transformers'
``PI0Config`` / ``PI05Config`` documentation for those checkpoints): a PaliGemma VLM (Gemma
2B, 257,152-token vocabulary), a Gemma 300M action expert, chunks of 50, 32-dimensional
state and action, 10 flow steps, three 224x224 cameras (openpi's ``base_0_rgb``,
``left_wrist_0_rgb``, ``right_wrist_0_rgb``), 48 prompt tokens for pi0 and 200 for pi0.5.
The tokenizer is a word-level stand-in (the embedding keeps its published rows). Weights
are stored in bfloat16, as published; the adapter loads them in its dtype (float32 on the
CPU unless told otherwise).

``python -m vlascope_transformers.published pi05 OUT`` writes one (~6.7 GB; pi0 ~7 GB).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from .tiny import PI05_WORDS, WORDS, _add_to_json, _pi_images, _randomise_time_gates, word_tokenizer

FAMILIES = ("pi0", "pi05")
GEMMA_2B = {"model_type": "gemma", "hidden_size": 2048, "num_hidden_layers": 18,
            "intermediate_size": 16384, "num_attention_heads": 8, "num_key_value_heads": 1,
            "head_dim": 256, "vocab_size": 257152}
GEMMA_300M = {"model_type": "gemma", "hidden_size": 1024, "num_hidden_layers": 18,
              "intermediate_size": 4096, "num_attention_heads": 8, "num_key_value_heads": 1,
              "head_dim": 256}
SIGLIP_SO400M = {"model_type": "siglip_vision_model", "hidden_size": 1152,
                 "intermediate_size": 4304, "num_hidden_layers": 27, "num_attention_heads": 16,
                 "patch_size": 14, "image_size": 224, "vision_use_head": False}
CAMERAS = ("base_0_rgb", "left_wrist_0_rgb", "right_wrist_0_rgb")
IMAGE_SIZE, PATCH = 224, 14
CHUNK, DIM, STEPS = 50, 32, 10
PROMPT_TOKENS = {"pi0": 48, "pi05": 200}


def _classes(family: str):
    import transformers

    if family not in FAMILIES:
        raise ValueError(f"unknown family '{family}' (known: {', '.join(FAMILIES)})")
    prefix = "PI0" if family == "pi0" else "PI05"
    return (getattr(transformers, f"{prefix}Config"),
            getattr(transformers, f"{prefix}ForConditionalGeneration"),
            getattr(transformers, f"{prefix}Processor"))


def published_config(family: str, image_token_id: int):
    """The published configuration; ``image_token_id``: the stand-in tokenizer's
    ``<image>`` (published: 257152, in the real vocabulary)."""
    config_class, _, _ = _classes(family)
    vlm = {"model_type": "paligemma", "text_config": dict(GEMMA_2B),
           "vision_config": dict(SIGLIP_SO400M), "projection_dim": GEMMA_2B["hidden_size"],
           "image_token_id": image_token_id, "vocab_size": GEMMA_2B["vocab_size"]}
    extra = {"max_state_dim": DIM} if family == "pi0" else {}
    return config_class(vlm_config=vlm, dit_config=dict(GEMMA_300M), chunk_size=CHUNK,
                        max_action_dim=DIM, num_inference_steps=STEPS, **extra)


def tokenizer_for(family: str):
    """The word-level stand-in tokenizer (pi0.5's knows its prompt's words and numbers)."""
    return word_tokenizer(words=(*WORDS, *PI05_WORDS)) if family == "pi05" else word_tokenizer()


def build(family: str, device: str = "cpu", dtype: torch.dtype = torch.bfloat16,
          seed: int = 0) -> torch.nn.Module:
    """The model with the family's own initialisation (``device="meta"``: shapes only,
    nothing allocated)."""
    _, model_class, _ = _classes(family)
    config = published_config(family, tokenizer_for(family).convert_tokens_to_ids("<image>"))
    torch.manual_seed(seed)
    with torch.device(device):
        model = model_class._from_config(config, dtype=dtype)
    if family == "pi05" and device != "meta":
        _randomise_time_gates(model)
    return model


def write_published(family: str, folder: str | Path, seed: int = 0) -> Path:
    """A random-weight published-size checkpoint of ``family`` in ``folder`` (bfloat16)."""
    _, _, processor_class = _classes(family)
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = tokenizer_for(family)
    images = _pi_images(IMAGE_SIZE, PATCH)
    if family == "pi0":
        stats = {"state_mean": [0.0] * DIM, "state_std": [1.0] * DIM,
                 "actions_mean": [0.0] * DIM, "actions_std": [1.0] * DIM,
                 "max_state_dim": DIM}
    else:
        stats = {"state_q01": [-1.0] * DIM, "state_q99": [1.0] * DIM,
                 "actions_q01": [-1.0] * DIM, "actions_q99": [1.0] * DIM,
                 "max_state_dim": DIM}
    processor = processor_class(image_processor=images, tokenizer=tokenizer, chunk_size=CHUNK,
                                **stats)
    build(family, seed=seed).save_pretrained(out)
    processor.save_pretrained(out)
    _add_to_json(out / "processor_config.json", camera_names=list(CAMERAS),
                 n_action_steps=CHUNK, max_length=PROMPT_TOKENS[family])
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m vlascope_transformers.published pi05 OUT``"""
    import argparse

    p = argparse.ArgumentParser(prog="python -m vlascope_transformers.published",
                                description="write a published-size checkpoint with random "
                                "weights")
    p.add_argument("family", choices=FAMILIES)
    p.add_argument("out")
    args = p.parse_args(argv)
    out = write_published(args.family, args.out)
    print(f"published-size {args.family} (random weights) -> {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
