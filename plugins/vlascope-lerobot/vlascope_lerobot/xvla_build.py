"""X-VLA checkpoints written by LeRobot 0.4.4's own ``XVLAPolicy.save_pretrained`` and
``make_xvla_pre_post_processors``, so the adapter is tested through exactly the loading code a
real checkpoint goes through. Runs in the "lerobot" environment (transformers 4.57).

- ``tiny``: random weights, 133 k parameters, a byte-level tokenizer written to
  ``<out>/tokenizer`` (where the adapter looks first), for the tabletop scene: cameras
  ``front`` and ``wrist`` at 64x64, a 4-number state, 4-number actions.
- ``published``: the X-VLA-0.9B architecture (Florence-2-large's DaViT and BART encoder, a
  24-block soft-prompted transformer; the values of ``lerobot/xvla-base``'s config) with
  random weights, for the same scene at 224x224 and ``action_mode="auto"`` (the model still
  predicts 20 numbers per step, as the published one does), with the tiny tokenizer (random
  weights need no real one): 879 M parameters, 3.3 GB written (measured: 26 s to write,
  31 s to load, ~1 min per chunk on 2 CPU cores). ``--params`` only counts them, built on
  the meta device.

``python -m vlascope_lerobot.xvla_build OUT [--size tiny|published]`` prints the folder.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .compat import import_lerobot
from .tiny import identity_stats

CAMERAS = ("front", "wrist")  # vlascope/scenes/tabletop: cameras, 4-number state and action
STATE_DIM = ACTION_DIM = 4
SPECIAL = ("<s>", "<pad>", "</s>", "<unk>")  # BART's ids 0-3, as Florence-2's config expects
TINY_VOCAB, BART_VOCAB = 260, 51289  # 4 + 256 bytes; BART's 50265 and Florence-2's own

# Florence-2-large as X-VLA-0.9B configures it (lerobot/xvla-base's config.json).
PUBLISHED_FLORENCE: dict[str, Any] = {
    "model_type": "florence2", "bos_token_id": 0, "eos_token_id": 2, "pad_token_id": 1,
    "ignore_index": -100, "projection_dim": 1024,
    "vision_config": {
        "model_type": "davit", "drop_path_rate": 0.1, "patch_size": [7, 3, 3, 3],
        "patch_stride": [4, 2, 2, 2], "patch_padding": [3, 1, 1, 1],
        "patch_prenorm": [False, True, True, True], "enable_checkpoint": False,
        "dim_embed": [256, 512, 1024, 2048], "num_heads": [8, 16, 32, 64],
        "num_groups": [8, 16, 32, 64], "depths": [1, 1, 9, 1], "window_size": 12,
        "projection_dim": 1024,
        "visual_temporal_embedding": {"type": "COSINE", "max_temporal_embeddings": 100},
        "image_pos_embed": {"type": "learned_abs_2d", "max_pos_embeddings": 50},
        "image_feature_source": ["spatial_avg_pool", "temporal_avg_pool"]},
    "text_config": {
        "vocab_size": BART_VOCAB, "d_model": 1024, "encoder_layers": 12, "decoder_layers": 12,
        "encoder_attention_heads": 16, "decoder_attention_heads": 16,
        "encoder_ffn_dim": 4096, "decoder_ffn_dim": 4096, "max_position_embeddings": 4096,
        "activation_function": "gelu", "dropout": 0.1, "attention_dropout": 0.1,
        "activation_dropout": 0.1, "scale_embedding": False, "num_hidden_layers": 12}}
PUBLISHED_HEAD: dict[str, Any] = {
    "hidden_size": 1024, "depth": 24, "num_heads": 16, "mlp_ratio": 4.0, "num_domains": 30,
    "len_soft_prompts": 32, "dim_time": 32, "max_len_seq": 512, "use_hetero_proj": False,
    "chunk_size": 30, "n_action_steps": 30, "num_denoising_steps": 10,
    "max_state_dim": 20, "max_action_dim": 20, "tokenizer_max_length": 64,
    "num_image_views": 3}  # X-VLA-0.9B was trained on three views; ours pad the third


def _tiny_florence(vocab_size: int) -> dict[str, Any]:
    """Three DaViT stages (stride 16: a 64x64 image gives a 4x4 grid) and a 2-layer
    encoder; the same structure as the published model, a thousand times smaller."""
    return {
        "model_type": "florence2", "bos_token_id": 0, "eos_token_id": 2, "pad_token_id": 1,
        "projection_dim": 32,
        "vision_config": {
            "dim_embed": [16, 32, 32], "num_heads": [2, 2, 2], "num_groups": [2, 2, 2],
            "depths": [1, 1, 1], "patch_size": [7, 3, 3], "patch_stride": [4, 2, 2],
            "patch_padding": [3, 1, 1], "patch_prenorm": [False, True, True],
            "window_size": 4, "projection_dim": 32,
            "image_pos_embed": {"type": "learned_abs_2d", "max_pos_embeddings": 16},
            "visual_temporal_embedding": {"type": "COSINE", "max_temporal_embeddings": 4},
            "image_feature_source": ["spatial_avg_pool", "temporal_avg_pool"]},
        "text_config": {
            "vocab_size": vocab_size, "d_model": 32, "encoder_layers": 2, "decoder_layers": 1,
            "encoder_attention_heads": 2, "decoder_attention_heads": 2,
            "encoder_ffn_dim": 64, "decoder_ffn_dim": 64, "max_position_embeddings": 64}}


TINY_HEAD: dict[str, Any] = {
    "hidden_size": 32, "depth": 2, "num_heads": 2, "mlp_ratio": 2.0, "num_domains": 4,
    "len_soft_prompts": 4, "dim_time": 8, "max_len_seq": 96, "chunk_size": 8,
    "n_action_steps": 4, "num_denoising_steps": 3, "max_state_dim": 8, "max_action_dim": 8,
    "tokenizer_max_length": 16}


def write_tokenizer(folder: Path) -> int:
    """A BART-like byte-level tokenizer (``<s> ... </s>``, pad id 1) with one token per
    byte: no merges to learn, so the same vocabulary on every build (BPE training breaks
    ties differently from run to run); returns its size."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {tok: i for i, tok in enumerate([*SPECIAL, *alphabet])}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                   pad_token="<pad>", unk_token="<unk>")
    fast.save_pretrained(folder)
    return len(fast)


def make_config(size: str = "tiny", vocab_size: int | None = None, image_size: int | None = None,
                cameras: Sequence[str] = CAMERAS):
    """The ``XVLAConfig`` of ``size`` for the tabletop scene (nothing is built)."""
    (configuration,) = import_lerobot("X-VLA", ["lerobot.policies.xvla.configuration_xvla"])
    from lerobot.configs.types import FeatureType, NormalizationMode, PolicyFeature

    if size not in ("tiny", "published"):
        raise ValueError(f"size must be tiny or published, not {size!r}")
    tiny = size == "tiny"
    side = image_size or (64 if tiny else 224)
    vocab_size = vocab_size or (TINY_VOCAB if tiny else BART_VOCAB)
    features = {f"observation.images.{c}": PolicyFeature(FeatureType.VISUAL, (3, side, side))
                for c in cameras}
    features["observation.state"] = PolicyFeature(FeatureType.STATE, (STATE_DIM,))
    return configuration.XVLAConfig(
        florence_config=_tiny_florence(vocab_size) if tiny else PUBLISHED_FLORENCE,
        **(TINY_HEAD if tiny else PUBLISHED_HEAD), action_mode="auto", device="cpu",
        # as LeRobot's fine-tunes of xvla-base: actions mean/std-normalised, the rest as is
        normalization_mapping={"VISUAL": NormalizationMode.IDENTITY,
                               "STATE": NormalizationMode.IDENTITY,
                               "ACTION": NormalizationMode.MEAN_STD},
        input_features=features,
        output_features={"action": PolicyFeature(FeatureType.ACTION, (ACTION_DIM,))})


def count_parameters(size: str = "published") -> int:
    """Parameters of the ``size`` model, built on the meta device (no memory is used)."""
    from accelerate import init_empty_weights  # parameters on meta; DaViT's init needs
    # ordinary tensors (torch.device("meta") would break its drop-path schedule's .item())

    (modeling,) = import_lerobot("X-VLA", ["lerobot.policies.xvla.modeling_xvla"])
    with init_empty_weights():
        policy = modeling.XVLAPolicy(make_config(size))
    # Florence-2's encoder shares the word embeddings; registering them on meta made two
    lm = policy.model.vlm.language_model.model
    lm.encoder.embed_tokens.weight = lm.shared.weight
    return sum(p.numel() for p in policy.parameters())


def write_xvla(out: Path, size: str = "tiny", seed: int = 0) -> Path:
    """Write an X-VLA checkpoint folder as LeRobot saves one: ``config.json``,
    ``model.safetensors``, ``policy_{pre,post}processor.json`` with their statistics
    (identity), and the tokenizer in ``<out>/tokenizer``."""
    import torch

    modeling, processor = import_lerobot("X-VLA", [
        "lerobot.policies.xvla.modeling_xvla", "lerobot.policies.xvla.processor_xvla"])
    out = Path(out)
    vocab = write_tokenizer(out / "tokenizer")
    # the published vocabulary is BART's; random weights need no real tokenizer, only ids
    # below its size, which ours gives
    config = make_config(size, vocab if size == "tiny" else BART_VOCAB)
    torch.manual_seed(seed)
    policy = modeling.XVLAPolicy(config)
    # Florence-2 leaves its image projection uninitialised (torch.empty: whatever memory
    # held, sometimes 1e25 and NaN after the norm); a trained checkpoint overwrites it
    projection = policy.model.vlm.image_projection
    torch.nn.init.normal_(projection.data, std=projection.shape[0] ** -0.5)
    policy.save_pretrained(out)
    stats = identity_stats(STATE_DIM, ACTION_DIM)
    named = config.tokenizer_name  # facebook/bart-large, as LeRobot's checkpoints name it
    config.tokenizer_name = str(out / "tokenizer")  # the step loads it when built
    pre, post = processor.make_xvla_pre_post_processors(config, dataset_stats=stats)
    for step in pre.steps:
        if hasattr(step, "tokenizer_name"):
            step.tokenizer_name = named
    pre.save_pretrained(out)
    post.save_pretrained(out)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m vlascope_lerobot.xvla_build",
                                description="write a random-weight X-VLA checkpoint")
    p.add_argument("out", nargs="?", help="the folder to write")
    p.add_argument("--size", choices=("tiny", "published"), default="tiny")
    p.add_argument("--params", action="store_true",
                   help="only print the model's parameter count (built on the meta device)")
    args = p.parse_args(argv)
    if args.params:
        print(count_parameters(args.size))
        return 0
    if not args.out:
        p.error("give the folder to write (or --params)")
    print(write_xvla(Path(args.out), args.size))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
