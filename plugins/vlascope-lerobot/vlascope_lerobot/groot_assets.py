"""The two folders a LeRobot GR00T N1.5 checkpoint needs besides its own, found offline, and
the private copies of them that LeRobot's code reads.

- The **base model** (``nvidia/GR00T-N1.5-3B``): ``GrootPolicy`` always builds itself with
  ``GR00TN15.from_pretrained(base_model_path)`` before the checkpoint's weights replace
  everything, so its ``config.json`` and weights must be on disk.
- The **Eagle assets** (``lerobot/eagle2hg-processor-groot-n1p5``): the Eagle 2.5 VLM's
  ``config.json`` (read when the backbone is built) and its tokenizer and processor files
  (read by the preprocessor's Eagle steps).

LeRobot would read both with ``trust_remote_code=True``: the Eagle folder's ``auto_map``
names Python files, and a folder could carry its own. We never import a folder's Python:
the Eagle classes come from the copy LeRobot installs (``lerobot/policies/groot/
eagle2_hg_model``), registered with transformers' Auto classes under their model type, and
LeRobot reads a private copy of the folder's data files with ``auto_map`` removed. An
``auto_map`` that names anything but those vendored classes is refused. The same copy sets
SDPA attention: the vendored Eagle code asks for flash-attention 2
(``modeling_eagle2_5_vl.py:107``), which is not installed and which CPUs lack.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from vlascope.core.errors import PluginError

FAMILY = "GR00T N1.5"
BASE_REPO = "nvidia/GR00T-N1.5-3B"
EAGLE_REPO = "lerobot/eagle2hg-processor-groot-n1p5"
# What LeRobot's ensure_eagle_cache_ready() fetches into its Eagle folder: all present, so
# LeRobot never tries to download one.
EAGLE_FILES = ("vocab.json", "merges.txt", "added_tokens.json", "chat_template.json",
               "special_tokens_map.json", "config.json", "generation_config.json",
               "preprocessor_config.json", "processor_config.json", "tokenizer_config.json")
BASE_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")
VENDOR = "lerobot.policies.groot.eagle2_hg_model"
# auto_map entry -> the vendored class it means; nothing else may be named
VENDORED = {"configuration_eagle2_5_vl.Eagle25VLConfig",
            "modeling_eagle2_5_vl.Eagle25VLForConditionalGeneration",
            "processing_eagle2_5_vl.Eagle25VLProcessor",
            "image_processing_eagle2_5_vl_fast.Eagle25VLImageProcessorFast"}
FAST_IMAGE_PROCESSOR = "Eagle25VLImageProcessorFast"
ATTENTION = "sdpa"


def _hub_snapshot(repo: str) -> Path | None:
    """``repo``'s folder in the Hugging Face cache, if it is there (never downloads)."""
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo, local_files_only=True))
    except Exception:  # noqa: BLE001 - not cached, or not a repo id at all
        return None


def _first_folder(option: str | None, what: str, candidates: list[Path | str | None]
                  ) -> Path | None:
    if option:
        path = Path(option).expanduser()
        if not path.is_dir():
            raise PluginError(f"{FAMILY}: {what}={option} is not a folder")
        return path.resolve()
    for cand in candidates:
        if cand and Path(cand).expanduser().is_dir():
            return Path(cand).expanduser().resolve()
    return None


def resolve_base(folder: Path, option: str | None, saved: str) -> Path:
    """The base model folder: ``base_model=``, ``<folder>/base``, the config's
    ``base_model_path`` when it is a folder, else that repo in the Hugging Face cache."""
    found = _first_folder(option, "base_model", [folder / "base", saved])
    found = found or _hub_snapshot(saved)
    if found is None:
        raise PluginError(
            f"{FAMILY}: the base model '{saved}' (base_model_path in {folder / 'config.json'})"
            f" is not on this machine and VLAScope never downloads; copy {BASE_REPO} "
            f"(config.json and its weights) to {folder / 'base'} or pass base_model=DIR "
            "(see docs/adapters.md)")
    if not (found / "config.json").is_file() or not any(
            (found / w).is_file() for w in BASE_WEIGHTS):
        raise PluginError(f"{FAMILY}: {found} is not a GR00T N1.5 base model folder (it needs "
                          f"config.json and {' or '.join(BASE_WEIGHTS)})")
    model_type = _read_json(found / "config.json").get("model_type")
    if model_type != "gr00t_n1_5":
        raise PluginError(f"{FAMILY}: {found} holds a '{model_type}' model, not the GR00T "
                          "N1.5 base model (model_type gr00t_n1_5)")
    return found


def resolve_eagle(folder: Path, option: str | None, saved: str) -> Path:
    """The Eagle assets folder: ``eagle=``, ``<folder>/eagle``, the config's
    ``tokenizer_assets_repo`` when it is a folder, LeRobot's own copy of it under
    ``HF_LEROBOT_HOME``, else that repo in the Hugging Face cache."""
    found = _first_folder(option, "eagle", [folder / "eagle", saved, _lerobot_home() / saved])
    found = found or _hub_snapshot(saved)
    if found is None:
        raise PluginError(
            f"{FAMILY}: the Eagle processor assets '{saved}' (tokenizer_assets_repo in "
            f"{folder / 'config.json'}) are not on this machine and VLAScope never downloads; "
            f"copy the files of {EAGLE_REPO} to {folder / 'eagle'} or pass eagle=DIR "
            "(see docs/adapters.md)")
    missing = [f for f in EAGLE_FILES if not (found / f).is_file()]
    if missing:
        raise PluginError(f"{FAMILY}: {found} lacks {', '.join(missing)} of the Eagle "
                          f"processor assets (the files of {EAGLE_REPO})")
    for path in sorted(found.glob("*.json")):  # refused before any LeRobot code runs
        _strip_auto_map(path)
    return found


def _lerobot_home() -> Path:
    """LeRobot's cache folder (``lerobot.utils.constants.HF_LEROBOT_HOME``), without
    importing LeRobot."""
    from huggingface_hub.constants import HF_HOME

    return Path(os.getenv("HF_LEROBOT_HOME", Path(HF_HOME) / "lerobot")).expanduser()


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise PluginError(f"{FAMILY}: cannot read {path} ({e})") from e
    if not isinstance(data, dict):
        raise PluginError(f"{FAMILY}: {path} is not a JSON object")
    return data


def _names(value: Any) -> list[str]:
    """The class references in one ``auto_map`` value (a string, or a list for tokenizers)."""
    values = value if isinstance(value, list | tuple) else [value]
    return [v for v in values if v is not None]


def _strip_auto_map(path: Path) -> dict[str, Any]:
    """``path``'s JSON without ``auto_map``, refusing one that names code other than
    LeRobot's vendored Eagle classes."""
    data = _read_json(path)
    for key, value in (data.pop("auto_map", None) or {}).items():
        for name in _names(value):
            if name not in VENDORED:
                raise PluginError(
                    f"{FAMILY}: {path} names the code '{name}' ({key} in auto_map), which is "
                    "not LeRobot's vendored Eagle code; VLAScope runs only the copy LeRobot "
                    f"installs ({', '.join(sorted(VENDORED))}), never a folder's own")
    return data


def stage_eagle(eagle: Path, into: Path) -> Path:
    """A private copy of the Eagle folder's data files at ``into`` (created): ``auto_map``
    removed, SDPA attention, no Python file. (Building the model, LeRobot copies its vendored
    ``.py`` files in, and its processor steps check one is there; with ``auto_map`` gone,
    transformers never imports them.)"""
    into.mkdir(parents=True)
    for src in sorted(eagle.iterdir()):
        if not src.is_file() or src.suffix == ".py":  # a folder's Python is never imported
            continue
        if src.suffix == ".json":
            data = _strip_auto_map(src)
            if src.name == "config.json":
                data["_attn_implementation"] = ATTENTION
            if src.name == "preprocessor_config.json":
                _drop_image_processor_type(src, data)
            (into / src.name).write_text(json.dumps(data, indent=2), encoding="utf-8")
        else:
            shutil.copyfile(src, into / src.name)
    return into


def _drop_image_processor_type(path: Path, data: dict[str, Any]) -> None:
    """Without ``auto_map``, transformers finds the registered image processor through the
    Eagle config's model type, but only when no ``image_processor_type`` names a class it
    cannot import itself (the vendored one is not in its tables)."""
    kind = data.pop("image_processor_type", FAST_IMAGE_PROCESSOR)
    if kind != FAST_IMAGE_PROCESSOR:
        raise PluginError(f"{FAMILY}: {path} names the image processor '{kind}'; LeRobot's "
                          f"GR00T preprocessor uses its vendored {FAST_IMAGE_PROCESSOR}")


def stage_base(base: Path, eagle_copy: Path, into: Path) -> Path:
    """A view of the base model folder at ``into`` (created): its ``config.json`` points the
    backbone at ``eagle_copy``, every other file is linked."""
    into.mkdir(parents=True)
    for src in sorted(base.iterdir()):
        if src.name != "config.json":
            os.symlink(src.resolve(), into / src.name)
    config = _read_json(base / "config.json")
    backbone = config.get("backbone_cfg")
    if not isinstance(backbone, dict):
        raise PluginError(f"{FAMILY}: {base / 'config.json'} has no backbone_cfg")
    # GR00T's EagleBackbone reads the Eagle config from HF_LEROBOT_HOME/<this>; an absolute
    # path replaces that whole path
    backbone["tokenizer_assets_repo"] = str(eagle_copy)
    (into / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    return into


def register_vendored_eagle() -> None:
    """Make transformers' Auto classes build LeRobot's vendored Eagle classes (imported as
    ordinary modules of the installed LeRobot), with SigLIP on SDPA attention."""
    from transformers import AutoConfig, AutoImageProcessor, AutoModel, AutoProcessor

    from .compat import import_lerobot

    config, modeling, processing, images = import_lerobot(FAMILY, [
        f"{VENDOR}.configuration_eagle2_5_vl", f"{VENDOR}.modeling_eagle2_5_vl",
        f"{VENDOR}.processing_eagle2_5_vl", f"{VENDOR}.image_processing_eagle2_5_vl_fast"])
    cfg = config.Eagle25VLConfig
    AutoConfig.register(cfg.model_type, cfg, exist_ok=True)
    AutoModel.register(cfg, modeling.Eagle25VLForConditionalGeneration, exist_ok=True)
    AutoImageProcessor.register(cfg, fast_image_processor_class=images.Eagle25VLImageProcessorFast,
                                exist_ok=True)
    AutoProcessor.register(cfg, processing.Eagle25VLProcessor, exist_ok=True)
    siglip = modeling.SiglipVisionModel
    if not getattr(siglip, "_vlascope_attention", False):
        modeling.SiglipVisionModel = type("SiglipVisionModel", (siglip,), {
            "__init__": _siglip_init(siglip), "_vlascope_attention": True,
            "__doc__": "SigLIP with SDPA: the vendored Eagle code sets flash_attention_2"})


def _siglip_init(parent: type):
    def __init__(self, config, *args, **kwargs):  # noqa: N807
        config._attn_implementation = ATTENTION
        parent.__init__(self, config, *args, **kwargs)
    return __init__
