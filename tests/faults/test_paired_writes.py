"""Defect 10 (two of its pairs): an SAE's ``sae.safetensors`` + ``sae.json`` and a VLM
action head's ``action_head.safetensors`` + ``vlascope_head.json`` were written one after
the other, so a crash between them left new weights under an old config, which loaded
silently when the shapes agreed. Both are now written to temporaries and renamed together
(``atomic_paths``), each pair carrying one id; the loaders refuse a mixed pair by name.
A crash between the two renames is reproduced by what it leaves on disk: the new weights
file next to the old config."""

import json
import shutil

import pytest
import torch

from vlascope.core.errors import PluginError, VLAScopeError
from vlascope.core.sae import SAEConfig, load_sae, save_sae
from vlascope.core.sae.model import SAE


def _sae(seed):
    torch.manual_seed(seed)
    return SAE(SAEConfig(d_in=8, expansion=2, k=4, layer="trunk.0.mlp"))


def test_an_sae_with_weights_from_another_save_is_refused(tmp_path):
    old = save_sae(_sae(0), tmp_path / "sae")
    newer = save_sae(_sae(1), tmp_path / "newer")
    shutil.copyfile(newer / "sae.safetensors", old / "sae.safetensors")  # crashed there
    with pytest.raises(VLAScopeError, match="sae.safetensors and sae.json were not written "
                                            "together"):
        load_sae(old)
    save_sae(_sae(1), old)  # saving again mends it
    assert torch.equal(load_sae(old).W_dec, load_sae(newer).W_dec)


def test_a_failed_sae_save_leaves_the_old_pair(tmp_path):
    """The config cannot be written (a folder stands at its temporary's target): the new
    weights must not replace the old ones either."""
    folder = save_sae(_sae(0), tmp_path / "sae")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    (folder / "sae.json").unlink()
    (folder / "sae.json").mkdir()
    with pytest.raises((VLAScopeError, OSError)):
        save_sae(_sae(1), folder)
    assert (folder / "sae.safetensors").read_bytes() == before["sae.safetensors"]
    assert sorted(p.name for p in folder.iterdir()) == ["sae.json", "sae.safetensors"]


def test_sae_files_from_before_pair_ids_still_load(tmp_path):
    """Folders users already have carry no pair id in either file."""
    from safetensors.torch import load_file, save_file

    folder = save_sae(_sae(0), tmp_path / "sae")
    meta = json.loads((folder / "sae.json").read_text())
    meta.pop("pair", None)
    (folder / "sae.json").write_text(json.dumps(meta))
    save_file(load_file(str(folder / "sae.safetensors")), str(folder / "sae.safetensors"),
              metadata={"format": "vlascope-sae"})
    assert load_sae(folder).cfg.d_sae == 16


def test_an_action_head_with_weights_from_another_save_is_refused(tmp_path):
    pytest.importorskip("vlascope_transformers")
    from vlascope_transformers.tiny import write_tiny_vlm_head
    from vlascope_transformers.vlm_head import (
        HEAD_JSON,
        HEAD_WEIGHTS,
        ActionHead,
        write_action_head,
    )

    from vlascope.core.plugins import PluginRegistry

    folder = write_tiny_vlm_head(tmp_path / "vlm")
    spec = json.loads((folder / HEAD_JSON).read_text())
    other = tmp_path / "other"
    other.mkdir()
    torch.manual_seed(5)
    hidden = spec["hidden"]
    registry = PluginRegistry.discover(plugin_dirs=[])
    policy = registry.create_policy("vlm-head", weights=str(folder), device="cpu")
    d_model = policy.model.config.get_text_config().hidden_size
    head = ActionHead(d_model, spec["state_dim"], hidden, spec["horizon"], spec["action_dim"])
    keep = {k: v for k, v in spec.items() if k not in ("format", "version", "pair")}
    write_action_head(other, head, keep)  # a newer head of the same shapes
    shutil.copyfile(other / HEAD_WEIGHTS, folder / HEAD_WEIGHTS)  # crashed there
    with pytest.raises(PluginError, match=f"{HEAD_WEIGHTS} and {HEAD_JSON} were not written "
                                          "together"):
        registry.create_policy("vlm-head", weights=str(folder), device="cpu")
    write_action_head(folder, head, keep)  # written as a pair: loads
    registry.create_policy("vlm-head", weights=str(folder), device="cpu")
