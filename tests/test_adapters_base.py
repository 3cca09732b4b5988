"""The shared adapter machinery on plain torch modules: hook points on outputs and inputs,
outputs the model later changes in place, read-only points, the visual-token tap, layer
listing for the picker, and the CLI's --policy-option parsing."""

import pytest
import torch
from torch import nn

from vlascope.adapters.hooks import ModuleHooks, TokenTap, fixed_positions
from vlascope.cli import parse_options
from vlascope.core.errors import VLAScopeError
from vlascope.core.policy import hook_points


class Block(nn.Module):
    """Adds its MLP's output into that output in place, as LeRobot's layer loop does."""

    def __init__(self):
        super().__init__()
        self.norm = nn.Identity()
        self.mlp = nn.Linear(3, 3)

    def forward(self, x=None, hidden_states=None):
        x = self.norm(x if hidden_states is None else hidden_states)
        out = self.mlp(x)
        out += x
        return out, "extra"


@pytest.fixture
def block():
    torch.manual_seed(0)
    return Block()


def test_output_hook_reads_and_replaces_the_first_element(block):
    hooks = ModuleHooks()
    hooks.add("out", block)
    x = torch.randn(2, 3)
    seen = []
    with hooks.hook("out", lambda a: seen.append(a.clone())):
        out, extra = block(x)
    assert torch.equal(seen[0], out) and extra == "extra"
    with hooks.hook("out", lambda a: a * 0):
        out, extra = block(x)
    assert torch.equal(out, torch.zeros(2, 3)) and extra == "extra"
    with pytest.raises(KeyError, match="no hook point 'nope'"), \
            hooks.hook("nope", lambda a: None):
        pass


def test_input_hook_edits_positional_and_keyword_inputs(block):
    hooks = ModuleHooks()
    hooks.add("in", block, "input")
    x = torch.randn(2, 3)
    with hooks.hook("in", lambda a: torch.zeros_like(a)):
        by_position = block(x)[0]
        by_keyword = block(hidden_states=x)[0]
    expected = block(torch.zeros(2, 3))[0]
    assert torch.equal(by_position, expected) and torch.equal(by_keyword, expected)


def test_a_copied_output_is_not_changed_by_the_model(block):
    x = torch.randn(2, 3)
    mlp_out = block.mlp(x).detach()
    for copy, should_match in ((False, False), (True, True)):
        hooks = ModuleHooks()
        hooks.add("mlp", block.mlp, copy_output=copy)
        kept = []
        with hooks.hook("mlp", kept.append):
            result = block(x)[0]
        assert torch.allclose(kept[0], mlp_out) is should_match
        assert torch.allclose(result, mlp_out + x)  # the model's own result is unchanged


def test_read_only_points_refuse_replacements(block):
    hooks = ModuleHooks()
    hooks.add("resid", block.norm, "input", read_only="the residual bypasses it")
    x = torch.randn(2, 3)
    with hooks.hook("resid", lambda a: None):  # reading is fine
        block(x)
    with pytest.raises(VLAScopeError, match="read but not replaced: the residual bypasses"), \
            hooks.hook("resid", lambda a: a + 1):
        block(x)


def test_token_tap_sees_and_writes_back_only_its_positions():
    tap = TokenTap()
    embeds = torch.arange(2 * 5 * 2, dtype=torch.float32).reshape(2, 5, 2)
    assert tap.apply(embeds, [1, 2]) is embeds  # no hook: nothing copied
    seen = []

    def zero(x):
        seen.append(x.shape)
        return torch.zeros_like(x)

    handle = tap.register_forward_hook(lambda m, i, o: zero(o))
    try:
        out = tap.apply(embeds, [1, 2])
    finally:
        handle.remove()
    assert seen == [torch.Size([2, 2, 2])]
    assert torch.equal(out[:, 1:3], torch.zeros(2, 2, 2))
    assert torch.equal(out[:, [0, 3, 4]], embeds[:, [0, 3, 4]])
    assert torch.equal(embeds[:, 1], torch.tensor([[2.0, 3.0], [12.0, 13.0]]))  # untouched


def test_fixed_positions_need_the_same_columns_in_every_row():
    mask = torch.tensor([[0, 1, 1, 0], [0, 1, 1, 0]], dtype=torch.bool)
    assert fixed_positions(mask, "image tokens") == [1, 2]
    with pytest.raises(RuntimeError, match="image tokens sit at different positions"):
        fixed_positions(torch.tensor([[1, 0], [0, 1]], dtype=torch.bool), "image tokens")


def test_hook_points_list_stacks_and_token_kinds():
    class Policy:
        def layers(self):
            return {"tokens.visual": None, "vlm.0.resid": None, "expert.0.mlp": None}

        def token_groups(self, layer):
            return {"visual": [0, 1], "language": [2]} if layer.startswith("vlm") else {}

    points = hook_points(Policy())
    assert [(p.name, p.stack, p.tokens) for p in points] == [
        ("tokens.visual", "tokens", ()), ("vlm.0.resid", "vlm", ("visual", "language")),
        ("expert.0.mlp", "expert", ())]
    assert hook_points(object()) == []


def test_policy_options_parse_numbers_and_lists():
    assert parse_options(["cameras=front,wrist", "n-action-steps=5", "x=0.5"]) == {
        "cameras": "front,wrist", "n_action_steps": 5, "x": 0.5}
    with pytest.raises(VLAScopeError, match="KEY=VALUE"):
        parse_options(["cameras"])
