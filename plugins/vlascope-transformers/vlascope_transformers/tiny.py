"""Tiny random-weight checkpoints, written by each family's own ``save_pretrained`` so that
they go through exactly the loading code a real checkpoint does. Checkpoints cannot be
downloaded here; these let the tests (and a user without a GPU) exercise every adapter.

``python -m vlascope_transformers.tiny --family pi0 --out DIR`` (or ``pi05``, ...) writes one
from the command line.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import torch

# Words of the built-in suite's and LIBERO's instructions, so a tiny tokenizer gives real
# token ids to the prompts the scenes produce; anything else becomes <unk>.
WORDS = (
    "pick", "up", "put", "place", "push", "stack", "move", "open", "close", "turn", "on",
    "off", "the", "a", "an", "and", "of", "in", "into", "to", "onto", "top", "left",
    "right", "front", "back", "red", "green", "blue", "yellow", "cube", "block", "bowl",
    "plate", "drawer", "cabinet", "stove", "mug", "basket", "box", "black", "white",
    "ketchup", "cream", "cheese", "butter", "alphabet", "soup", "tomato", "sauce", "milk",
    "orange", "juice", "bbq", "salad", "dressing", "chocolate", "pudding", "wine",
    "bottle", "rack", "caddy", "microwave", "it", "cup", "table", "center", "next",
    "between",
)
SPECIAL = ("<pad>", "<eos>", "<bos>", "<unk>", "<image>")


def word_tokenizer(extra_special: Sequence[str] = (), words: Sequence[str] = WORDS):
    """A word-level fast tokenizer built offline with ``tokenizers``."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab: dict[str, int] = {}
    for w in (*SPECIAL, *extra_special, "\n", *words):
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>",
                                   bos_token="<bos>", unk_token="<unk>",
                                   additional_special_tokens=["<image>", *extra_special])


def _gemma(hidden: int, layers: int, vocab: int | None = None) -> dict:
    cfg = {"model_type": "gemma", "hidden_size": hidden, "num_hidden_layers": layers,
           "intermediate_size": 2 * hidden, "num_attention_heads": 2,
           "num_key_value_heads": 1, "head_dim": hidden // 2}
    if vocab is not None:
        cfg["vocab_size"] = vocab
    return cfg


def _siglip(image_size: int, patch: int, hidden: int) -> dict:
    return {"model_type": "siglip_vision_model", "hidden_size": hidden,
            "intermediate_size": 2 * hidden, "patch_size": patch, "image_size": image_size,
            "num_hidden_layers": 1, "num_attention_heads": 2, "vision_use_head": False}


def _pi_images(image_size: int, patch: int):
    """pi0's and pi0.5's image processor for square ``image_size`` frames."""
    from transformers.models.pi0.image_processing_pi0 import PI0ImageProcessor

    return PI0ImageProcessor(size={"max_height": image_size, "max_width": image_size},
                             pad_size={"height": image_size, "width": image_size},
                             image_seq_length=(image_size // patch) ** 2)


def _pi_vlm(tokenizer, image_size: int, patch: int) -> dict:
    """The 2-layer PaliGemma both tiny pi models condition their expert on (the vocabulary
    read after the processor has added its tokens)."""
    vocab = len(tokenizer)
    return {"model_type": "paligemma", "text_config": _gemma(32, 2, vocab),
            "vision_config": _siglip(image_size, patch, 32), "projection_dim": 32,
            "image_token_id": tokenizer.convert_tokens_to_ids("<image>"), "vocab_size": vocab}


def write_tiny_pi0(folder: str | Path, cameras: Sequence[str] = ("front", "wrist"),
                   state_dim: int = 4, action_dim: int = 4, image_size: int = 32,
                   patch: int = 8, chunk: int = 8, n_action_steps: int = 4,
                   seed: int = 0) -> Path:
    """A pi0 with a 2-layer PaliGemma and a 2-layer expert (~0.2 M parameters)."""
    from transformers import PI0Config, PI0ForConditionalGeneration, PI0Processor

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = word_tokenizer()
    images = _pi_images(image_size, patch)
    dim = max(state_dim, action_dim)
    processor = PI0Processor(image_processor=images, tokenizer=tokenizer,
                             state_mean=[0.0] * state_dim, state_std=[1.0] * state_dim,
                             actions_mean=[0.0] * action_dim, actions_std=[1.0] * action_dim,
                             max_state_dim=dim, chunk_size=chunk)
    torch.manual_seed(seed)
    config = PI0Config(
        vlm_config=_pi_vlm(tokenizer, image_size, patch),
        dit_config=_gemma(32, 2), chunk_size=chunk, max_state_dim=dim, max_action_dim=dim,
        num_inference_steps=3)
    PI0ForConditionalGeneration(config).save_pretrained(out)
    processor.save_pretrained(out)
    _add_to_json(out / "processor_config.json", camera_names=list(cameras),
                 n_action_steps=n_action_steps)
    return out


# pi0.5's prompt: "Task: ..., State: 12 200 -1 ...;\nAction: " (the bins as numbers)
PI05_WORDS = ("Task", "State", "Action", ":", ",", ";", "-", *map(str, range(256)))


def write_tiny_pi05(folder: str | Path, cameras: Sequence[str] = ("front", "wrist"),
                    state_dim: int = 4, action_dim: int = 4, image_size: int = 32,
                    patch: int = 8, chunk: int = 8, n_action_steps: int = 4,
                    seed: int = 0) -> Path:
    """A pi0.5 with a 2-layer PaliGemma and a 2-layer expert, quantile statistics as
    LeRobot's pi0.5 uses, and a 64-token text budget (LeRobot's is 200) to stay fast."""
    from transformers import PI05Config, PI05ForConditionalGeneration, PI05Processor

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = word_tokenizer(words=(*WORDS, *PI05_WORDS))
    images = _pi_images(image_size, patch)
    dim = max(state_dim, action_dim)
    # the processor adds PaliGemma's <loc>/<seg> tokens: the vocabulary is read after it
    processor = PI05Processor(image_processor=images, tokenizer=tokenizer,
                              state_q01=[-1.0] * state_dim, state_q99=[1.0] * state_dim,
                              actions_q01=[-1.0] * action_dim, actions_q99=[1.0] * action_dim,
                              max_state_dim=dim, chunk_size=chunk)
    torch.manual_seed(seed)
    config = PI05Config(
        vlm_config=_pi_vlm(tokenizer, image_size, patch),
        dit_config=_gemma(32, 2), chunk_size=chunk, max_action_dim=dim,
        num_inference_steps=3)
    model = PI05ForConditionalGeneration(config)
    _randomise_time_gates(model)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    _add_to_json(out / "processor_config.json", camera_names=list(cameras),
                 n_action_steps=n_action_steps, max_length=64)
    return out


def _randomise_time_gates(model: torch.nn.Module) -> None:
    """pi0.5 initialises its adaptive norms' gates to zero, which leaves a fresh expert
    blind to the VLM (every layer adds 0 x attention): random gates make the tiny model's
    actions depend on the image and the prompt, as a trained one's do."""
    from transformers.models.pi05.modeling_pi05 import PI05AdaptiveRMSNorm

    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, PI05AdaptiveRMSNorm):
                torch.nn.init.normal_(m.dense.weight, std=0.2)
                torch.nn.init.normal_(m.dense.bias, std=0.2)


def _add_to_json(path: Path, **values) -> None:
    """VLAScope's own keys next to a processor's: which scene cameras feed the images."""
    data = json.loads(path.read_text())
    data.update(values)
    path.write_text(json.dumps(data, indent=2))


# Qwen2-VL's processor needs a video processor, which needs torchvision (not installable
# next to CPU torch here): the adapter reads Qwen2-VL checkpoints, this builder cannot make one.
VLM_FAMILIES = ("paligemma", "idefics3")


def _paligemma(tokenizer, image_size: int, patch: int):
    from transformers import PaliGemmaConfig, PaliGemmaProcessor
    from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

    images = SiglipImageProcessorPil(size={"height": image_size, "width": image_size})
    images.image_seq_length = (image_size // patch) ** 2
    processor = PaliGemmaProcessor(image_processor=images, tokenizer=tokenizer)
    vocab = len(tokenizer)
    config = PaliGemmaConfig(text_config=_gemma(32, 2, vocab),
                             vision_config=_siglip(image_size, patch, 32), projection_dim=32,
                             image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
                             vocab_size=vocab)
    return config, processor, "<image>"


def _idefics3(tokenizer, image_size: int, patch: int):
    from transformers import Idefics3Config, Idefics3Processor
    from transformers.models.idefics3.image_processing_pil_idefics3 import (
        Idefics3ImageProcessorPil,
    )

    edge = {"longest_edge": image_size}
    images = Idefics3ImageProcessorPil(do_image_splitting=False, size=edge,
                                       max_image_size=edge)
    processor = Idefics3Processor(image_processor=images, tokenizer=tokenizer,
                                  image_seq_len=(image_size // patch) ** 2 // 4)
    vocab = len(tokenizer)
    config = Idefics3Config(
        text_config={"model_type": "llama", "hidden_size": 32, "num_hidden_layers": 2,
                     "intermediate_size": 64, "num_attention_heads": 2,
                     "num_key_value_heads": 1, "vocab_size": vocab},
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                       "num_attention_heads": 2, "patch_size": patch,
                       "image_size": image_size},
        scale_factor=2, image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        vocab_size=vocab)
    return config, processor, "<image>"


def write_tiny_vlm_head(folder: str | Path, family: str = "paligemma",
                        cameras: Sequence[str] = ("front", "wrist"), state_dim: int = 4,
                        action_dim: int = 4, image_size: int = 32, patch: int = 8,
                        chunk: int = 8, n_action_steps: int = 4, seed: int = 0) -> Path:
    """A tiny VLM of ``family`` with a random action head, in the generic adapter's format."""
    from transformers import AutoModelForImageTextToText

    from .vlm_head import ActionHead, write_action_head

    builders = {"paligemma": _paligemma, "idefics3": _idefics3}
    if family not in builders:
        raise ValueError(f"unknown family '{family}' (known: {', '.join(builders)})")
    extra = ("<fake_token_around_image>", "<global-img>", "<end_of_utterance>") \
        if family == "idefics3" else ()
    tokenizer = word_tokenizer(extra_special=extra)
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    config, processor, placeholder = builders[family](tokenizer, image_size, patch)
    model = AutoModelForImageTextToText.from_config(config)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    head = ActionHead(config.get_text_config().hidden_size, state_dim, 64, chunk, action_dim)
    write_action_head(out, head, {"cameras": list(cameras), "state_dim": state_dim,
                                  "hidden": 64, "n_action_steps": n_action_steps,
                                  "image_placeholder": placeholder, "max_length": 96})
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m vlascope_transformers.tiny --family pi0 --out DIR``"""
    import argparse

    p = argparse.ArgumentParser(prog="python -m vlascope_transformers.tiny",
                                description="write a tiny random-weight checkpoint")
    p.add_argument("--family", default="pi0", choices=("pi0", "pi05", *VLM_FAMILIES))
    p.add_argument("--out", required=True)
    p.add_argument("--cameras", default="front,wrist")
    p.add_argument("--state-dim", type=int, default=4)
    p.add_argument("--action-dim", type=int, default=4)
    args = p.parse_args(argv)
    common = {"cameras": args.cameras.split(","), "state_dim": args.state_dim,
              "action_dim": args.action_dim}
    if args.family == "pi0":
        out = write_tiny_pi0(args.out, **common)
    elif args.family == "pi05":
        out = write_tiny_pi05(args.out, **common)
    else:
        out = write_tiny_vlm_head(args.out, args.family, **common)
    print(f"tiny {args.family} checkpoint -> {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
