"""The reference VLA's trainable part: a transformer trunk over visual, language, state and
action-query tokens, with two action heads (L1 chunk regression, OFT style, and flow
matching, pi0/SmolVLA style). It takes the frozen encoders' features, so training runs on
cached features and inference on live ones through the same module.

Token sequence: [language (L) | state (1) | camera 1 grid | camera 2 grid | action queries (H)].
Every interesting tensor passes through a ``HookPoint`` (an identity module), so forward
hooks read or replace it: ``tokens.visual``, ``tokens.language``, ``trunk.{i}.attn``,
``trunk.{i}.mlp``, ``trunk.{i}.resid``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
from torch import nn
from torch.nn import functional as F


@dataclass
class ReferenceConfig:
    cameras: tuple[str, ...] = ("front", "wrist")
    image_size: int = 96
    encoder_depth: int = 11  # EfficientNet-Lite0 blocks kept: 112 channels at stride 16
    # Earlier blocks whose outputs are pooled onto the grid and joined to each visual token:
    # block 3 (24 channels, stride 4) still separates the red cube from the blue one, which
    # block 11 at this resolution barely does (held-out linear probe: 97% vs 60%).
    encoder_taps: tuple[int, ...] = (3,)
    vision_dim: int = 136
    text_dim: int = 384
    text_tokens: int = 12
    state_dim: int = 4
    action_dim: int = 4
    horizon: int = 8
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    mlp_ratio: int = 4
    dropout: float = 0.1
    # FiLM (as in RT-1): the instruction scales and shifts every visual token, so "which
    # cube" is decided token by token instead of by a two-hop attention circuit the trunk
    # did not learn in 16 epochs (the first shipped model ignored the colour word).
    film: bool = True
    # Head the policy acts with ("l1" or "flow"; both are trained). Flow: on the same weights
    # the L1 head hovers over the target instead of releasing (the mean of "still moving"
    # and "open now"); mean success 80% -> 90%, stack_blue_on_red 47% -> 80%.
    head: str = "flow"
    flow_steps: int = 10
    n_action_steps: int = 1
    extra: dict = field(default_factory=dict)

    @property
    def grid(self) -> int:
        return math.ceil(self.image_size / 16)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["cameras"] = list(self.cameras)
        d["encoder_taps"] = list(self.encoder_taps)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ReferenceConfig:
        d = dict(d)
        d["cameras"] = tuple(d.get("cameras", cls.cameras))
        d["encoder_taps"] = tuple(d.get("encoder_taps", ()))  # configs before taps had none
        d.setdefault("film", False)  # nor FiLM
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})


class HookPoint(nn.Identity):
    """A named place in the forward pass where hooks read or replace activations."""


class Attention(nn.Module):
    def __init__(self, d: int, heads: int, dropout: float):
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.capture = False  # set by the policy to record attention maps
        self.last_weights: torch.Tensor | None = None

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        bias = torch.zeros(b, 1, 1, n, dtype=q.dtype, device=x.device)
        bias = bias.masked_fill(~key_mask[:, None, None, :], float("-inf"))
        if self.capture:
            w = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1]) + bias
            w = w.softmax(-1)
            self.last_weights = w.detach()
            out = w @ v
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias,
                                                 dropout_p=self.dropout if self.training else 0)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class Block(nn.Module):
    def __init__(self, cfg: ReferenceConfig):
        super().__init__()
        d = cfg.d_model
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = Attention(d, cfg.n_heads, cfg.dropout)
        self.mlp = nn.Sequential(nn.Linear(d, cfg.mlp_ratio * d), nn.GELU(),
                                 nn.Linear(cfg.mlp_ratio * d, d))
        self.drop = nn.Dropout(cfg.dropout)
        self.hook_attn, self.hook_mlp, self.hook_resid = HookPoint(), HookPoint(), HookPoint()

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
        x = x + self.drop(self.hook_attn(self.attn(self.norm1(x), key_mask)))
        x = x + self.drop(self.hook_mlp(self.mlp(self.norm2(x))))
        return self.hook_resid(x)


class FlowHead(nn.Module):
    """Velocity field v(x_t, t | context) per chunk step; 10 Euler steps at inference."""

    def __init__(self, cfg: ReferenceConfig):
        super().__init__()
        d = cfg.d_model
        self.action_in = nn.Linear(cfg.action_dim, d)
        self.time_in = nn.Sequential(nn.Linear(32, d), nn.GELU(), nn.Linear(d, d))
        self.net = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, 2 * d), nn.GELU(),
                                 nn.Linear(2 * d, 2 * d), nn.GELU(),
                                 nn.Linear(2 * d, cfg.action_dim))
        self.steps = cfg.flow_steps

    @staticmethod
    def _time_features(t: torch.Tensor) -> torch.Tensor:
        freqs = torch.exp(torch.linspace(0, math.log(1000), 16, device=t.device))
        ang = t[:, None] * freqs[None] * math.pi
        return torch.cat([ang.sin(), ang.cos()], dim=-1)

    def velocity(self, x_t: torch.Tensor, t: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
        h = ctx + self.action_in(x_t) + self.time_in(self._time_features(t))[:, None, :]
        return self.net(h)

    def loss(self, ctx: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        noise = torch.randn_like(actions)
        t = torch.rand(actions.shape[0], device=actions.device)
        x_t = (1 - t[:, None, None]) * noise + t[:, None, None] * actions
        return F.mse_loss(self.velocity(x_t, t, ctx), actions - noise)

    def sample(self, ctx: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        x, dt = noise, 1.0 / self.steps
        for i in range(self.steps):
            t = torch.full((x.shape[0],), i * dt, device=x.device, dtype=x.dtype)
            x = x + dt * self.velocity(x, t, ctx)
        return x


class ReferenceTrunk(nn.Module):
    """Everything trainable: projections, embeddings, transformer, heads."""

    def __init__(self, cfg: ReferenceConfig):
        super().__init__()
        self.cfg = cfg
        d, g = cfg.d_model, cfg.grid
        self.vision_proj = nn.Linear(cfg.vision_dim, d)
        self.text_proj = nn.Linear(cfg.text_dim, d)
        self.state_proj = nn.Linear(cfg.state_dim, d)
        self.camera_emb = nn.Parameter(torch.zeros(len(cfg.cameras), 1, d))
        self.grid_pos = nn.Parameter(torch.randn(g * g, d) * 0.02)
        self.text_pos = nn.Parameter(torch.randn(cfg.text_tokens, d) * 0.02)
        self.queries = nn.Parameter(torch.randn(cfg.horizon, d) * 0.02)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.norm = nn.LayerNorm(d)
        self.l1_head = nn.Linear(d, cfg.action_dim)
        self.flow_head = FlowHead(cfg)
        if cfg.film:
            self.film = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, 2 * d))
            nn.init.zeros_(self.film[-1].weight)  # starts as the identity
            nn.init.zeros_(self.film[-1].bias)
        self.hook_visual, self.hook_language = HookPoint(), HookPoint()
        self.hook_state = HookPoint()

    def layout(self) -> dict[str, dict]:
        """Camera -> visual token grid and its positions in the sequence."""
        g, start = self.cfg.grid, self.cfg.text_tokens + 1
        return {cam: {"grid": (g, g), "positions": list(range(start + i * g * g,
                                                              start + (i + 1) * g * g))}
                for i, cam in enumerate(self.cfg.cameras)}

    def readout_positions(self) -> list[int]:
        """The action queries come last in the sequence."""
        n = self.cfg.text_tokens + 1 + len(self.cfg.cameras) * self.cfg.grid ** 2
        return list(range(n, n + self.cfg.horizon))

    def encode(self, vision: torch.Tensor, text: torch.Tensor, text_mask: torch.Tensor,
               state: torch.Tensor) -> torch.Tensor:
        """vision (B, cams, tokens, 112), text (B, L, 384), state (B, S) -> query outputs."""
        b, n_cam, n_tok, _ = vision.shape
        vis = self.vision_proj(vision) + self.grid_pos[None, None] + self.camera_emb[None]
        vis = self.hook_visual(vis.reshape(b, n_cam * n_tok, -1))
        txt = self.hook_language(self.text_proj(text) + self.text_pos[None])
        if self.cfg.film:
            w = text_mask[..., None].to(txt.dtype)
            pooled = (txt * w).sum(1) / w.sum(1).clamp(min=1)
            gamma, beta = self.film(pooled)[:, None].chunk(2, dim=-1)
            vis = vis * (1 + gamma) + beta
        st = self.hook_state(self.state_proj(state)[:, None])
        q = self.queries[None].expand(b, -1, -1)
        x = torch.cat([txt, st, vis, q], dim=1)
        ones = torch.ones(b, x.shape[1] - text_mask.shape[1], dtype=torch.bool,
                          device=x.device)
        key_mask = torch.cat([text_mask, ones], dim=1)
        for block in self.blocks:
            x = block(x, key_mask)
        return self.norm(x[:, -self.cfg.horizon:])

    def losses(self, vision, text, text_mask, state, actions) -> dict[str, torch.Tensor]:
        ctx = self.encode(vision, text, text_mask, state)
        return {"l1": F.l1_loss(self.l1_head(ctx), actions),
                "flow": self.flow_head.loss(ctx, actions)}

    def act(self, vision, text, text_mask, state, head: str,
            noise: torch.Tensor | None = None) -> torch.Tensor:
        ctx = self.encode(vision, text, text_mask, state)
        if head == "l1":
            return self.l1_head(ctx)
        if noise is None:
            noise = torch.randn(ctx.shape[0], self.cfg.horizon, self.cfg.action_dim,
                                device=ctx.device, dtype=ctx.dtype)
        return self.flow_head.sample(ctx, noise)
