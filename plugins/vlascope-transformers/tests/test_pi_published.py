"""The published-size pi0 / pi0.5 builders (benchmarks/full_size.py) give the published
architecture: built on the meta device (shapes only, nothing allocated), so this is fast."""

import pytest
import torch
from vlascope_transformers.published import build

# Gemma 2B's non-embedding parameters (Gemma technical report, 2024, table 2): the VLM's
# language model is Gemma 2B with PaliGemma's 257,152-token embedding
GEMMA_2B_NON_EMBEDDING = 1_981_884_416
PI0_PAPER = 3.3e9  # "3.3 billion parameters" (pi0 paper, 2024)


@pytest.fixture(scope="module")
def models():
    return {f: build(f, device="meta") for f in ("pi0", "pi05")}


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("family", ["pi0", "pi05"])
def test_published_size_on_meta(models, family):
    model = models[family]
    assert {p.device.type for p in model.parameters()} == {"meta"}  # nothing allocated
    text = model.model.vlm.language_model
    embedding = text.embed_tokens.weight.numel()
    assert embedding == 257_152 * 2048
    assert count(text) - embedding == GEMMA_2B_NON_EMBEDDING
    assert abs(count(model) / PI0_PAPER - 1) < 0.1
    assert model.config.chunk_size == 50 and model.config.num_inference_steps == 10
    assert len(model.model.dit.layers) == 18 and model.config.dit_config.hidden_size == 1024


def test_pi05_is_smaller_than_pi0(models):
    """LeRobot's pi0.5 notes: fewer parameters than pi0 (no state projection)."""
    assert count(models["pi05"]) < count(models["pi0"])
