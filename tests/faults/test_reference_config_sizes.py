"""Defect 11's class, in the reference policy: its trunk was built from config.json's sizes
before the weights were checked, so an edited config could make a load allocate
gigabytes (or die trying). The loader now builds the trunk on torch's meta device, checks
its shapes against the safetensors header, and only then loads. The load runs in a child
process under an address-space limit."""

import json
import shutil

import pytest
from crafted_files import load_under_memory_limit

from vlascope.policies.reference.policy import shipped_weights


def load_in_child(folder) -> str:
    return load_under_memory_limit("vlascope.policies.reference.policy:load_checkpoint",
                                   folder)[0]


def edited(tmp_path, **config):
    folder = tmp_path / "edited"
    shutil.copytree(shipped_weights("reference"), folder)
    meta = json.loads((folder / "config.json").read_text())
    meta["config"].update(config)
    (folder / "config.json").write_text(json.dumps(meta))
    return folder


def test_the_shipped_checkpoint_loads_under_the_limit():
    assert load_in_child(shipped_weights("reference")) == "loaded"


@pytest.mark.parametrize("config", [{"d_model": 1 << 16, "n_layers": 64},
                                    {"mlp_ratio": 1 << 14}])
def test_a_config_larger_than_its_weights_is_refused_before_allocating(tmp_path, config):
    said = load_in_child(edited(tmp_path, **config))
    assert said.startswith("error: reference policy:"), said
    assert "does not match config.json" in said, said
