"""Defect 11: an SAE's sizes came from sae.json and were allocated (and filled with random
numbers) before the weights' shapes were checked, so an edited config could make a load
take gigabytes. The loader now reads the shapes from the safetensors header, refuses a
config that disagrees or asks for absurd sizes, and only then allocates. Each load runs in
a child process under an address-space limit, which reports its own peak memory."""

import json

import pytest
import torch
from crafted_files import load_under_memory_limit

from vlascope.core.sae import SAEConfig, load_sae, save_sae
from vlascope.core.sae.model import SAE


def load_in_child(folder) -> tuple[str, int]:
    """(what load_sae said, the child's peak resident memory in MiB)."""
    return load_under_memory_limit("vlascope.core.sae:load_sae", folder)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    torch.manual_seed(0)
    sae = SAE(SAEConfig(d_in=8, expansion=2, k=4, layer="trunk.0.mlp"))
    return save_sae(sae, tmp_path_factory.mktemp("sae") / "small")


@pytest.fixture(scope="module")
def baseline_mib(saved):
    said, peak = load_in_child(saved)
    assert said == "loaded"
    return peak


def _with_config(saved, tmp_path, **config):
    folder = tmp_path / "edited"
    folder.mkdir()
    (folder / "sae.safetensors").write_bytes((saved / "sae.safetensors").read_bytes())
    meta = json.loads((saved / "sae.json").read_text())
    meta["config"].update(config)
    (folder / "sae.json").write_text(json.dumps(meta))
    return folder


def test_a_config_larger_than_its_weights_is_refused_before_allocating(saved, baseline_mib,
                                                                       tmp_path):
    """2048 x 16: the SAE it describes would take ~0.8 GB to build."""
    folder = _with_config(saved, tmp_path, d_in=2048, expansion=16)
    said, peak = load_in_child(folder)
    assert said.startswith("error:") and "does not match sae.json" in said, said
    assert "W_enc (16, 8) != (32768, 2048)" in said
    assert peak < baseline_mib + 100, f"{peak} MiB, a plain load takes {baseline_mib} MiB"


@pytest.mark.parametrize("config", [{"d_in": 1 << 20}, {"expansion": 1 << 16}])
def test_absurd_sizes_are_refused_by_name(saved, baseline_mib, tmp_path, config):
    folder = _with_config(saved, tmp_path, **config)
    said, peak = load_in_child(folder)
    assert said.startswith("error:") and "asks for an SAE of" in said, said
    assert peak < baseline_mib + 100


def test_a_smaller_config_is_refused_too(saved, tmp_path):
    from vlascope.core.errors import VLAScopeError

    folder = _with_config(saved, tmp_path, expansion=1)
    with pytest.raises(VLAScopeError, match=r"W_enc \(16, 8\) != \(8, 8\)"):
        load_sae(folder)
    assert load_sae(saved).cfg.d_sae == 16  # the untouched SAE still loads
