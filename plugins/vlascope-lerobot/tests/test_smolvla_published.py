"""The published-size SmolVLA builder (benchmarks/full_size.py) gives smolvla_base's
architecture: built on the meta device (shapes only, nothing allocated), so this is fast."""

import torch
from vlascope_lerobot.published import build_smolvla, write_smolvlm2_500m

SMOLVLA_PAPER = 450e6  # "SmolVLA (0.45B)" (SmolVLA paper and blog, 2025)
# SmolLM2-360M, SmolVLM2-500M's language model: 32 layers of 960 wide (published config)
SMOLLM2_LAYER = (960 * 960 * 2 + 960 * 320 * 2) + 3 * 960 * 2560 + 2 * 960


def test_published_smolvla_on_meta(tmp_path):
    policy = build_smolvla(write_smolvlm2_500m(tmp_path / "vlm"), device="meta")
    assert {p.device.type for p in policy.parameters()} == {"meta"}  # nothing allocated
    total = sum(p.numel() for p in policy.parameters())
    assert abs(total / SMOLVLA_PAPER - 1) < 0.02
    vlm = policy.model.vlm_with_expert.get_vlm_model()
    assert len(vlm.text_model.layers) == 16  # the first half of SmolVLM2's 32
    assert sum(p.numel() for p in vlm.text_model.layers[0].parameters()) == SMOLLM2_LAYER
    assert policy.config.chunk_size == 50 and policy.config.num_steps == 10
    assert [k for k in policy.config.image_features] == [
        "observation.image", "observation.image2", "observation.image3"]
    assert torch.Size(policy.config.image_features["observation.image"].shape) == (3, 256, 256)
