"""GR00T N1.5 checkpoints with random weights, written by GR00T's and LeRobot's own
``save_pretrained`` in the layout a real one has, so the adapter is tested through exactly
the loading code a real checkpoint goes through:

    OUT/            the LeRobot policy (config.json, model.safetensors, processor pipelines)
    OUT/base/       the GR00T N1.5 base model GrootPolicy builds itself from
    OUT/eagle/      the Eagle processor assets (tokenizer, processor, Eagle config)

``tiny`` is a 0.76 M-parameter model for tests; ``published`` has GR00T-N1.5-3B's
published configuration (SigLIP-400M + Qwen3-1.7B cut to 12 layers, the 16-layer DiT).
Both keep the published structure (no pixel shuffle, a one-layer connector, the LLM cut
at ``select_layer``, interleaved DiT self-attention). The tokenizer is a small byte-level
BPE in both (Qwen3's is not available offline), so ``published`` sets
``image_token_index`` to its ``<IMG_CONTEXT>`` id instead of 151669. The configs name the
published Hub repos, as a real fine-tune does; the adapter finds ``base/`` and ``eagle/``.

    python -m vlascope_lerobot.groot_build OUT [--size tiny|published]
    python -m vlascope_lerobot.groot_build --count [--size published]   (no weights)
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from .groot_assets import (
    BASE_REPO,
    EAGLE_REPO,
    register_vendored_eagle,
    stage_base,
    stage_eagle,
)

SPECIAL = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<IMG_CONTEXT>", "<img>", "</img>")
CORPUS = ("pick up the red cube", "pick up the green cube", "push the blue cube to the left",
          "stack the red cube on the green cube", "put the cube on the plate", "user",
          "assistant", "Perform the task.", "['pick up the red cube']", "<image 1><image 2>")
# ChatML with the "<image-N>" placeholders Eagle's processor expands into image tokens
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% set n = namespace(image=0) %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}{% set n.image = n.image + 1 %}<image-{{ n.image }}>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")

# GR00T-N1.5-3B's config.json (action head, backbone) and its Eagle config, as published
PUBLISHED_HEAD = {
    "action_dim": 32, "action_horizon": 16, "add_pos_embed": True,
    "backbone_embedding_dim": 2048,
    "diffusion_model_cfg": {"attention_head_dim": 48, "cross_attention_dim": 2048,
                            "dropout": 0.2, "final_dropout": True,
                            "interleave_self_attention": True, "norm_type": "ada_norm",
                            "num_attention_heads": 32, "num_layers": 16, "output_dim": 1024,
                            "positional_embeddings": None},
    "hidden_size": 1024, "input_embedding_dim": 1536, "max_action_dim": 32, "max_state_dim": 64,
    "model_dtype": "float32", "noise_beta_alpha": 1.5, "noise_beta_beta": 1.0, "noise_s": 0.999,
    "num_inference_timesteps": 4, "num_target_vision_tokens": 32, "num_timestep_buckets": 1000,
    "tune_diffusion_model": True, "tune_projector": True, "use_vlln": True,
    "vl_self_attention_cfg": {"attention_head_dim": 64, "dropout": 0.2, "final_dropout": True,
                              "num_attention_heads": 32, "num_layers": 4,
                              "positional_embeddings": None}}
PUBLISHED_BACKBONE = {
    "eagle_path": "NVEagle/eagle_er-qwen3_1_7B-Siglip2_400M_stage1_5_128gpu_er_v7_1mlp_nops",
    "load_bf16": False, "project_to_dim": None, "reproject_vision": False, "select_layer": 12,
    "tune_llm": False, "tune_visual": True, "use_flash_attention": True}
PUBLISHED_EAGLE = {
    "downsample_ratio": 0.5, "dynamic_image_size": True, "force_image_size": 224,
    "loss_version": "efficient_v2_cp_head", "max_dynamic_tiles": 12, "min_dynamic_tiles": 1,
    "mlp_checkpoint": False, "mlp_connector_layers": 1, "pad2square": False, "select_layer": 27,
    "template": "qwen3-chat", "use_backbone_lora": 0, "use_llm_lora": 0,
    "use_pixel_shuffle": False, "use_thumbnail": True,
    "text_config": {"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3",
                    "attention_bias": False, "attention_dropout": 0.0, "head_dim": 128,
                    "hidden_act": "silu", "hidden_size": 2048, "intermediate_size": 6144,
                    "max_position_embeddings": 40960, "max_window_layers": 28,
                    "num_attention_heads": 16, "num_hidden_layers": 28,
                    "num_key_value_heads": 8, "rms_norm_eps": 1e-6, "rope_theta": 1000000,
                    "tie_word_embeddings": True, "use_cache": False, "vocab_size": 151680},
    "vision_config": {"model_type": "siglip_vision_model", "hidden_act": "gelu_pytorch_tanh",
                      "hidden_size": 1152, "image_size": 224, "intermediate_size": 4304,
                      "layer_norm_eps": 1e-6, "num_attention_heads": 16, "num_channels": 3,
                      "num_hidden_layers": 27, "patch_size": 14}}
# the same structure, small: 16 image tokens per camera (56 px / patch 14, squared)
TINY_EAGLE_TEXT = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 4,
                   "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 16,
                   "max_position_embeddings": 512, "max_window_layers": 4}
TINY_EAGLE_VISION = {"hidden_size": 32, "image_size": 56, "intermediate_size": 64,
                     "num_attention_heads": 2, "num_hidden_layers": 2}
TINY_HEAD = {"backbone_embedding_dim": 32, "hidden_size": 32, "input_embedding_dim": 48,
             "num_target_vision_tokens": 4,
             "diffusion_model_cfg": {"attention_head_dim": 24, "cross_attention_dim": 32,
                                     "num_attention_heads": 2, "num_layers": 4, "output_dim": 32},
             "vl_self_attention_cfg": {"attention_head_dim": 16, "num_attention_heads": 2,
                                       "num_layers": 2}}
SIZES = ("tiny", "published")


def _merged(base: dict, changes: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in changes.items():
        out[key] = _merged(out[key], value) if isinstance(value, dict) else value
    return out


def configs(size: str, image_token: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """(Eagle config, GR00T base config) as dicts for ``size``."""
    if size not in SIZES:
        raise ValueError(f"size must be one of {SIZES}, got '{size}'")
    eagle = copy.deepcopy(PUBLISHED_EAGLE)
    eagle.update(model_type="eagle_2_5_vl", architectures=["Eagle25VLForConditionalGeneration"],
                 image_token_index=image_token,
                 auto_map={"AutoConfig": "configuration_eagle2_5_vl.Eagle25VLConfig",
                           "AutoModel": "modeling_eagle2_5_vl.Eagle25VLForConditionalGeneration"})
    head, backbone = copy.deepcopy(PUBLISHED_HEAD), dict(PUBLISHED_BACKBONE)
    if size == "tiny":
        eagle = _merged(eagle, {"text_config": TINY_EAGLE_TEXT, "vision_config": TINY_EAGLE_VISION,
                                "force_image_size": 56, "select_layer": 2})
        head, backbone["select_layer"] = _merged(head, TINY_HEAD), 2
    gr00t = {"action_dim": head["action_dim"], "action_horizon": head["action_horizon"],
             "architectures": ["GR00T_N1_5"], "attn_implementation": None,
             "hidden_size": eagle["text_config"]["hidden_size"], "model_dtype": "float32",
             "model_type": "gr00t_n1_5", "backbone_cfg": backbone, "action_head_cfg": head}
    return eagle, gr00t


def write_eagle(folder: Path, size: str = "tiny") -> dict[str, Any]:
    """The Eagle assets (LeRobot's list: tokenizer, processor, chat template, Eagle config,
    generation config), written by the vendored processor's ``save_pretrained``; returns
    the Eagle config."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GenerationConfig, Qwen2TokenizerFast

    register_vendored_eagle()
    from lerobot.policies.groot.eagle2_hg_model.image_processing_eagle2_5_vl_fast import (
        Eagle25VLImageProcessorFast,
    )
    from lerobot.policies.groot.eagle2_hg_model.processing_eagle2_5_vl import Eagle25VLProcessor

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(list(CORPUS) * 20, trainers.BpeTrainer(
        vocab_size=300, special_tokens=list(SPECIAL),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tokenizer = Qwen2TokenizerFast(tokenizer_object=tok, unk_token=None, bos_token=None,
                                   eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   additional_special_tokens=list(SPECIAL[1:]))
    image_token = tokenizer.convert_tokens_to_ids("<IMG_CONTEXT>")
    eagle, _ = configs(size, image_token)
    if size == "tiny":
        eagle["text_config"]["vocab_size"] = len(tokenizer)
    side = eagle["force_image_size"]
    per_tile = (side // eagle["vision_config"]["patch_size"]) ** 2
    images = Eagle25VLImageProcessorFast(
        size={"height": side, "width": side}, image_mean=[0.5] * 3, image_std=[0.5] * 3,
        min_dynamic_tiles=1, max_dynamic_tiles=12, use_thumbnail=True)
    processor = Eagle25VLProcessor(image_processor=images, tokenizer=tokenizer,
                                   chat_template=CHAT_TEMPLATE, tokens_per_tile=per_tile)
    folder.mkdir(parents=True, exist_ok=True)
    processor.save_pretrained(folder, save_jinja_files=False)
    GenerationConfig(eos_token_id=tokenizer.eos_token_id,
                     pad_token_id=tokenizer.pad_token_id).save_pretrained(folder)
    (folder / "config.json").write_text(json.dumps(eagle, indent=2), encoding="utf-8")
    if not (folder / "added_tokens.json").is_file():  # LeRobot's asset list has it
        (folder / "added_tokens.json").write_text(json.dumps(
            {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL}), encoding="utf-8")
    return eagle


def gr00t_config(size: str, eagle_copy: Path, image_token: int):
    """GR00T's own ``GR00TN15Config`` for ``size``, its backbone reading ``eagle_copy``."""
    from lerobot.policies.groot.groot_n1 import GR00TN15Config

    _, gr00t = configs(size, image_token)
    gr00t["backbone_cfg"]["tokenizer_assets_repo"] = str(eagle_copy)
    return GR00TN15Config(**gr00t)


def parameter_count(size: str = "published") -> tuple[dict[str, Any], int]:
    """(the Eagle and GR00T configs, the base model's parameter count), built on the meta
    device: nothing is allocated, so the published size is cheap to check."""
    from lerobot.policies.groot.groot_n1 import GR00TN15

    with tempfile.TemporaryDirectory(prefix="vlascope-groot-") as tmp:
        eagle = write_eagle(Path(tmp) / "eagle", size)
        copy_dir = stage_eagle(Path(tmp) / "eagle", Path(tmp) / "copy")
        config = gr00t_config(size, copy_dir, eagle["image_token_index"])
        validate = torch.distributions.Distribution._validate_args
        torch.distributions.Distribution.set_default_validate_args(False)  # the flow's Beta
        try:  # would check its parameters with .item(), which meta tensors do not have
            with torch.device("meta"), contextlib.redirect_stdout(io.StringIO()):
                model = GR00TN15(config, local_model_path=tmp)
        finally:
            torch.distributions.Distribution.set_default_validate_args(validate)
        count = sum(p.numel() for p in model.parameters())
    return {"eagle": eagle, "gr00t": config.to_dict()}, count


def write_groot(out: Path, size: str = "tiny", cameras: Sequence[str] = ("front", "wrist"),
                state_dim: int = 4, action_dim: int = 4, image_size: int = 48,
                seed: int = 0) -> Path:
    """A LeRobot GR00T N1.5 policy folder with ``base/`` and ``eagle/`` beside its files
    (image features named after the scene cameras, min/max statistics of +-1, the
    published embodiment tag ``new_embodiment``); returns ``out``."""
    from .compat import import_lerobot

    configuration, modeling, processor, groot_n1, types = import_lerobot("GR00T N1.5", [
        "lerobot.policies.groot.configuration_groot", "lerobot.policies.groot.modeling_groot",
        "lerobot.policies.groot.processor_groot", "lerobot.policies.groot.groot_n1",
        "lerobot.configs.types"])
    out = Path(out).resolve()
    with tempfile.TemporaryDirectory(prefix="vlascope-groot-") as tmp, \
            contextlib.redirect_stdout(io.StringIO()):  # GR00T prints as it builds
        eagle = write_eagle(out / "eagle", size)
        eagle_copy = stage_eagle(out / "eagle", Path(tmp) / "eagle")
        torch.manual_seed(seed)
        base = groot_n1.GR00TN15(gr00t_config(size, eagle_copy, eagle["image_token_index"]),
                                 local_model_path=str(out / "base"))
        base.save_pretrained(out / "base")
        del base  # GrootPolicy loads it again: one copy in memory at the published size
        _edit_json(out / "base" / "config.json",  # as published: no tokenizer_assets_repo
                   lambda c: c["backbone_cfg"].pop("tokenizer_assets_repo", None))
        feature, kind = types.PolicyFeature, types.FeatureType
        config = configuration.GrootConfig(
            base_model_path=str(out / "base"), tokenizer_assets_repo=str(eagle_copy),
            use_bf16=False, device="cpu", chunk_size=16, n_action_steps=8,
            input_features={
                **{f"observation.images.{c}": feature(kind.VISUAL, (3, image_size, image_size))
                   for c in cameras},
                "observation.state": feature(kind.STATE, (state_dim,))},
            output_features={"action": feature(kind.ACTION, (action_dim,))})
        config.base_model_path = str(stage_base(out / "base", eagle_copy, Path(tmp) / "base"))
        policy = modeling.GrootPolicy(config)
        torch.manual_seed(seed + 1)
        with torch.no_grad():  # a fine-tune: the checkpoint's weights are not the base's
            for p in policy.parameters():
                p.add_(0.02 * torch.randn_like(p))
        policy.save_pretrained(out)
        stats = {"observation.state": {"min": -torch.ones(state_dim),
                                       "max": torch.ones(state_dim)},
                 "action": {"min": -torch.ones(action_dim), "max": torch.ones(action_dim)}}
        pre, post = processor.make_groot_pre_post_processors(config, dataset_stats=stats)
        pre.save_pretrained(out)
        post.save_pretrained(out)
    _edit_json(out / "config.json", lambda c: c.update(base_model_path=BASE_REPO,
                                                       tokenizer_assets_repo=EAGLE_REPO))
    return out


def _edit_json(path: Path, edit) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    edit(data)
    path.write_text(json.dumps(data, indent=4), encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m vlascope_lerobot.groot_build",
                                description="write a random-weight GR00T N1.5 checkpoint")
    p.add_argument("out", nargs="?", help="the policy folder to write")
    p.add_argument("--size", choices=SIZES, default="tiny")
    p.add_argument("--count", action="store_true",
                   help="print the configs and the parameter count as JSON (meta device: "
                        "nothing allocated, nothing written)")
    args = p.parse_args(argv)
    if args.count:
        found, count = parameter_count(args.size)
        print(json.dumps({"size": args.size, "parameters": count, **found}, default=str))
    elif args.out:
        print(write_groot(Path(args.out), args.size))
    else:
        p.error("give OUT, or --count")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
