"""A deterministic fuzz pass over ``PolicyServer.handle`` (the whole protocol, no sockets)
on the reference policy: random bytes, random msgpack structures built from the protocol's
own words, and bit flips, truncations and field swaps of valid requests. Every input gets
an answer (a text frame or a map), ``handle`` never raises, a ``{"vlascope": ...}`` request
is answered with a map, and afterwards the policy answers a valid request exactly as
before (no hook left installed, nothing corrupted)."""

import msgpack
import numpy as np
import pytest

from vlascope.core.plugins import PluginRegistry
from vlascope.remote.server import PolicyServer, Session
from vlascope.remote.wire import WireError, pack, unpack

SEED = 2026
CASES = 600
WORDS = ["vlascope", "infer", "attention", "reset", "describe", "observations", "images",
         "state", "instruction", "extras", "hooks", "define", "release", "common_noise",
         "layer", "op", "t", "key", "kind", "capture", "add_vector", "replace",
         "mean_replace", "sae_ablation", "delta", "values", "positions", "per_step", "rows",
         "pool", "front", "wrist", "observation/front", "observation/wrist",
         "observation/state", "prompt", "tokens.visual", "vision.front", "tokens.state"]
DTYPES = ["<f4", "|u1", "<i8", "<f2", "|O", "<c16", "V8", "<U3", "|b1", "xx", "<f8" * 3, 5]


def _valid(side: int = 96) -> dict:
    rng = np.random.default_rng(1)
    return {"vlascope": "infer", "common_noise": True, "observations": {
        "images": {c: rng.integers(0, 255, (1, side, side, 3), dtype=np.uint8)
                   for c in ("front", "wrist")},
        "state": np.zeros((1, 4), np.float32), "instruction": ["pick up the red block"]}}


def _array(rng) -> dict:
    shape = [int(rng.choice([0, 1, 3, 4, 96, 128, 1 << 33])) for _ in range(rng.integers(0, 5))]
    dtype = DTYPES[rng.integers(len(DTYPES))]
    n = int(rng.choice([0, 1, 4, 12, 96 * 96 * 3, 512]))
    return {b"__ndarray__": True, b"data": rng.bytes(n), b"dtype": dtype, b"shape": shape}


def _value(rng, depth: int = 0):
    kind = rng.integers(0, 12 if depth < 4 else 7)
    if kind == 0:
        return None
    if kind == 1:
        return bool(rng.integers(2))
    if kind == 2:
        return int(rng.choice([-1, 0, 1, 3, 7, 2**31, 2**63 - 1, -(2**63)]))
    if kind == 3:
        return float(rng.choice([0.0, -1.5, np.nan, np.inf, 1e308]))
    if kind == 4:
        return WORDS[rng.integers(len(WORDS))]
    if kind == 5:
        return rng.bytes(int(rng.integers(0, 64)))
    if kind == 6:
        return _array(rng)
    if kind in (7, 8):
        return [_value(rng, depth + 1) for _ in range(rng.integers(0, 4))]
    return {WORDS[rng.integers(len(WORDS))]: _value(rng, depth + 1)
            for _ in range(rng.integers(0, 5))}


def _swap(rng, message: dict) -> dict:
    """The valid request with one field, at any depth, replaced by a random value."""
    out = dict(message)
    target = out
    while True:
        key = list(target)[rng.integers(len(target))]
        if isinstance(target[key], dict) and rng.integers(2):
            target[key] = dict(target[key])
            target = target[key]
            continue
        target[key] = _value(rng)
        return out


def _inputs(rng):
    good = pack(_valid(side=4))  # small frames: flips land in the structure, not pixels
    for i in range(CASES):
        kind = i % 6
        if kind == 0:
            yield rng.bytes(int(rng.integers(0, 200)))
        elif kind == 1:
            body = _value(rng)
            if rng.integers(2):
                body = {"vlascope": WORDS[rng.integers(4)], **(body if isinstance(body, dict)
                                                               else {"x": body})}
            yield msgpack.packb(body, use_bin_type=True)
        elif kind == 2:
            data = bytearray(good)
            for _ in range(rng.integers(1, 8)):
                data[rng.integers(len(data))] ^= 1 << int(rng.integers(8))
            yield bytes(data)
        elif kind == 3:
            yield good[:rng.integers(len(good))]
        elif kind == 4:
            yield pack(_swap(rng, _valid()))
        else:
            yield WORDS[rng.integers(len(WORDS))]  # a text frame


@pytest.fixture(scope="module")
def server():
    policy = PluginRegistry.discover().create_policy("reference")
    return PolicyServer(policy, "reference", max_message=8 << 20, max_batch=64)


def _answer(server, session, raw):
    answer = server.handle(session, raw)
    assert isinstance(answer, str | bytes), type(answer)
    if isinstance(answer, bytes):
        reply = unpack(answer)
        assert isinstance(reply, dict) and reply, reply
    return answer


def test_handle_answers_everything(server):
    session = Session()
    before = unpack(_answer(server, session, pack(_valid())))["actions"]
    rng = np.random.default_rng(SEED)
    kinds = {"text": 0, "map": 0}
    for raw in _inputs(rng):
        answer = _answer(server, session, raw)
        kinds["text" if isinstance(answer, str) else "map"] += 1
        try:
            request = unpack(raw)
        except WireError:
            continue
        if isinstance(request, dict) and "vlascope" in request:
            assert isinstance(answer, bytes), (request, answer)
    assert kinds["text"] > 50 and kinds["map"] > 50, kinds  # both kinds were exercised
    after = unpack(_answer(server, Session(), pack(_valid())))["actions"]
    np.testing.assert_array_equal(after, before)
