"""A tiny random-weight SmolVLA checkpoint, written by LeRobot's own ``save_pretrained`` and
processor pipelines around a tiny SmolVLM built offline, so the adapter is tested through
exactly the loading code a real checkpoint goes through.

``python -m vlascope_lerobot.tiny --out DIR`` writes one from the command line.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from .compat import import_smolvla

SPECIAL = ("<unk>", "<pad>", "<|im_start|>", "<end_of_utterance>", "<image>",
           "<fake_token_around_image>", "<global-img>")
CORPUS = ("pick up the red cube", "pick up the green cube", "push the blue cube to the left",
          "stack the red cube on the green cube", "put the cube on the plate",
          "pick up the black bowl and place it on the plate",
          "open the top drawer of the cabinet", "turn on the stove")


def smolvlm_tokenizer():
    """A byte-level BPE tokenizer with SmolVLM's special tokens, trained offline on the
    scenes' instructions (the real one cannot be downloaded here)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(list(CORPUS) * 20, trainers.BpeTrainer(
        vocab_size=320, special_tokens=list(SPECIAL),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", bos_token="<|im_start|>",
        eos_token="<end_of_utterance>",
        extra_special_tokens={"image_token": "<image>",
                              "fake_image_token": "<fake_token_around_image>",
                              "global_image_token": "<global-img>",
                              "end_of_utterance_token": "<end_of_utterance>"})


def write_smolvlm_files(folder: Path, config, tokenizer, image_size: int, tokens: int,
                        splitting: bool = False, longest_edge: int | None = None) -> None:
    """``config``, ``tokenizer`` and a SmolVLM processor (``tokens`` per image of
    ``image_size``) into ``folder``: what LeRobot's SmolVLA reads from its VLM folder."""
    from transformers import SmolVLMProcessor
    from transformers.models.smolvlm.image_processing_pil_smolvlm import (
        SmolVLMImageProcessorPil,
    )
    from transformers.models.smolvlm.video_processing_smolvlm import SmolVLMVideoProcessor

    edge = {"longest_edge": image_size}
    processor = SmolVLMProcessor(
        image_processor=SmolVLMImageProcessorPil(
            size={"longest_edge": longest_edge or image_size}, max_image_size=edge,
            do_image_splitting=splitting),
        video_processor=SmolVLMVideoProcessor(size=edge, max_image_size=edge),
        tokenizer=tokenizer, image_seq_len=tokens)
    folder.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    processor.save_pretrained(folder)


def write_tiny_smolvlm(folder: Path, image_size: int = 64, patch: int = 8) -> int:
    """Config, byte-level BPE tokenizer and processor of a ~0.4 M-parameter SmolVLM (its
    weights come from the policy checkpoint); returns image tokens per camera."""
    from transformers import SmolVLMConfig

    tokenizer = smolvlm_tokenizer()
    tokens = (image_size // patch) ** 2
    config = SmolVLMConfig(
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                       "num_attention_heads": 2, "image_size": image_size,
                       "patch_size": patch},
        text_config={"model_type": "llama", "vocab_size": len(tokenizer), "hidden_size": 64,
                     "intermediate_size": 128, "num_hidden_layers": 4,
                     "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16,
                     "max_position_embeddings": 512,
                     "pad_token_id": tokenizer.pad_token_id},
        scale_factor=1, image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        pad_token_id=tokenizer.pad_token_id)
    write_smolvlm_files(folder, config, tokenizer, image_size, tokens)
    return tokens


def write_tiny_smolvla(folder: str | Path, cameras: Sequence[str] = ("front", "wrist"),
                       state_dim: int = 4, action_dim: int = 4, image_size: int = 64,
                       chunk: int = 8, n_action_steps: int = 4, seed: int = 0) -> Path:
    """A SmolVLA checkpoint with its VLM files in ``<folder>/vlm`` (where the adapter looks
    first), image features named after the scene cameras, identity statistics."""
    lr = import_smolvla()
    from lerobot.configs.types import FeatureType, PolicyFeature

    out = Path(folder)
    write_tiny_smolvlm(out / "vlm", image_size)
    config = lr["SmolVLAConfig"](
        vlm_model_name=str(out / "vlm"), load_vlm_weights=False,
        input_features={
            **{f"observation.images.{c}": PolicyFeature(type=FeatureType.VISUAL,
                                                        shape=(3, image_size, image_size))
               for c in cameras},
            "observation.state": PolicyFeature(type=FeatureType.STATE, shape=(state_dim,))},
        output_features={"action": PolicyFeature(type=FeatureType.ACTION,
                                                 shape=(action_dim,))},
        chunk_size=chunk, n_action_steps=n_action_steps, num_steps=3,
        resize_imgs_with_padding=(image_size, image_size), num_vlm_layers=4,
        tokenizer_max_length=16, device="cpu")
    torch.manual_seed(seed)
    policy = lr["SmolVLAPolicy"](config)
    policy.save_pretrained(out)
    write_smolvla_processors(config, out, state_dim, action_dim)
    return out


def identity_stats(state_dim: int, action_dim: int) -> dict[str, dict[str, torch.Tensor]]:
    """Mean 0, std 1 for state and action: random weights were trained on no data, so
    their pipelines normalise nothing."""
    return {"observation.state": {"mean": torch.zeros(state_dim), "std": torch.ones(state_dim)},
            "action": {"mean": torch.zeros(action_dim), "std": torch.ones(action_dim)}}


def write_smolvla_processors(config, out: Path, state_dim: int, action_dim: int) -> None:
    """SmolVLA's own pre/post-processing pipelines, with identity statistics, into ``out``."""
    from lerobot.policies.smolvla.processor_smolvla import make_smolvla_pre_post_processors

    pre, post = make_smolvla_pre_post_processors(
        config, dataset_stats=identity_stats(state_dim, action_dim))
    pre.save_pretrained(out)
    post.save_pretrained(out)


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m vlascope_lerobot.tiny",
                                description="write a tiny random-weight SmolVLA checkpoint")
    p.add_argument("--out", required=True)
    p.add_argument("--cameras", default="front,wrist")
    p.add_argument("--state-dim", type=int, default=4)
    p.add_argument("--action-dim", type=int, default=4)
    args = p.parse_args(argv)
    out = write_tiny_smolvla(args.out, args.cameras.split(","), args.state_dim,
                             args.action_dim)
    print(f"tiny SmolVLA checkpoint -> {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
