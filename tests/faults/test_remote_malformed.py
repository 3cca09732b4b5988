"""Malformed requests sent over a raw websocket to a live ``vlascope serve``: each gets an
error answer of the kind its client reads (a text frame, as openpi's server sends, for
anything not a VLAScope request; ``{"error": ...}`` for a ``{"vlascope": ...}`` request), and
the same connection serves a normal request afterwards. Too big a message: the ``remote``
plugin refuses it before sending, and a raw client that sends it anyway loses its
connection while the server keeps serving others."""

import numpy as np
import pytest
from served import served
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from vlascope.core.policy import Observation
from vlascope.remote.client import RemotePolicyError, make_remote
from vlascope.remote.wire import pack, unpack

SIDE = 96  # the reference policy's image size


def _images(n: int = 1) -> dict:
    rng = np.random.default_rng(0)
    return {c: rng.integers(0, 255, (n, SIDE, SIDE, 3), dtype=np.uint8)
            for c in ("front", "wrist")}


def _batch(**change) -> dict:
    batch = {"images": _images(), "state": np.zeros((1, 4), np.float32),
             "instruction": ["pick up the red block"]}
    batch.update(change)
    return batch


def _infer(**change) -> dict:
    return {"vlascope": "infer", "observations": _batch(), **change}


def _array(data: bytes, dtype: str, shape: list) -> dict:
    """An array as openpi's msgpack_numpy writes it (binary keys), whatever it claims."""
    return {b"__ndarray__": True, b"data": data, b"dtype": dtype, b"shape": shape}


def _ask(ws, message):
    ws.send(message if isinstance(message, str | bytes) else pack(message))
    answer = ws.recv(timeout=60)
    return answer if isinstance(answer, str) else unpack(answer)


GOOD_OPENPI = {"observation/front": _images()["front"][0],
               "observation/wrist": _images()["wrist"][0],
               "observation/state": np.zeros(4, np.float32), "prompt": "pick up the red block"}

#: name -> (message, the answer's kind, words the answer must hold)
CASES = {
    "garbage bytes": (b"\xc1\xffgarbage\x00", "text", "undecodable"),
    "a text frame": ("hello", "text", "binary"),
    "a msgpack array": ([1, 2, 3], "text", "must be a map"),
    "non-string keys": ({1: 2}, "text", "undecodable"),
    "nested 100000 deep": (b"\x91" * 100_000 + b"\xc0", "text", "undecodable"),
    "a string claiming 4 GB": (b"\x81\xdb\xff\xff\xff\xff" + b"x" * 10, "text", "undecodable"),
    "openpi map of wrong types": ({"observation/state": "abc", "prompt": 5}, "text",
                                  "prompt"),
    "openpi image of the wrong shape": (
        {**GOOD_OPENPI, "observation/front": _array(bytes(12), "|u1", [2, 2, 3])}, "text",
        "front"),
    "openpi image shorter than its shape": (
        {**GOOD_OPENPI, "observation/front": _array(bytes(10), "|u1", [96, 96, 3])}, "text",
        "does not match"),
    "request that is not a string": ({"vlascope": 5}, "map", "must be str"),
    "observations of the wrong type": ({"vlascope": "infer", "observations": 5}, "map",
                                       "must be dict"),
    "instruction of the wrong type": (_infer(observations=_batch(instruction="go")), "map",
                                      "must be list"),
    "state shorter than its shape": (
        _infer(observations=_batch(state=_array(bytes(8), "<f4", [3, 3]))), "map",
        "does not match"),
    "dtype object": (_infer(observations=_batch(state=_array(bytes(8), "|O", [1]))), "map",
                     "dtype"),
    "a pickle dtype string": (_infer(observations=_batch(state=_array(bytes(8), "V8", [1]))),
                              "map", "dtype"),
    "a huge claimed shape": (
        _infer(observations=_batch(state=_array(b"", "<f4", [1 << 40, 1 << 40]))), "map",
        "does not match"),
    "a negative shape": (_infer(observations=_batch(state=_array(b"", "<f4", [-1, 4]))),
                         "map", "non-negative"),
    "images not uint8": (_infer(observations=_batch(
        images={"front": np.zeros((1, SIDE, SIDE, 3), np.float32)})), "map", "uint8"),
    "a NaN state": (_infer(observations=_batch(state=np.full((1, 4), np.nan, np.float32))),
                    "map", "finite"),
    "an unknown request": ({"vlascope": "frobnicate"}, "map", "unknown request"),
    "a hook on an unknown layer": (
        _infer(define=[{"key": 1, "op": {"kind": "capture", "pooling": "mean"}}],
               hooks=[{"layer": "no.such.layer", "op": 1, "t": None}]), "map",
        "no hook point"),
    "a hook op never defined": (_infer(hooks=[{"layer": "tokens.visual", "op": 77}]), "map",
                                "never defined"),
    "an unknown hook op": (_infer(define=[{"key": 1, "op": {"kind": "rm -rf"}}]), "map",
                           "unknown hook operation"),
    "an intervention with NaNs": (
        _infer(define=[{"key": 2, "op": {"kind": "add_vector",
                                          "delta": np.full(128, np.nan, np.float32)}}],
               hooks=[{"layer": "tokens.visual", "op": 2, "t": 0}]), "map", "non-finite"),
    "a step edit without its step": (
        _infer(define=[{"key": 3, "op": {"kind": "add_vector",
                                          "delta": np.zeros(128, np.float32)}}],
               hooks=[{"layer": "tokens.visual", "op": 3}]), "map", "needs a step"),
}


@pytest.fixture(scope="module")
def server():
    """One server for the module; its 1 MB limit is far above every malformed request."""
    with served("--max-message-mb", "1") as s:
        yield s


@pytest.fixture(scope="module")
def ws(server):
    with connect(server.url, compression=None, max_size=None) as ws:
        meta = unpack(ws.recv(timeout=60))
        assert meta["vlascope"]["policy"]["cameras"] == ["front", "wrist"]
        yield ws


def _still_serving(ws) -> None:
    reply = _ask(ws, pack(_infer()))
    assert "error" not in reply and reply["actions"].shape == (1, 8, 4), reply
    reply = _ask(ws, pack(GOOD_OPENPI))
    assert not isinstance(reply, str) and reply["actions"].shape == (8, 4), reply


@pytest.mark.parametrize("name", list(CASES))
def test_malformed_request_gets_an_error_answer(ws, name):
    message, kind, words = CASES[name]
    answer = _ask(ws, message)
    if kind == "text":
        assert isinstance(answer, str) and answer.startswith("vlascope serve: "), answer
        assert words in answer, answer
    else:
        assert isinstance(answer, dict) and set(answer) == {"error"}, answer
        assert words in answer["error"], answer
    _still_serving(ws)


def test_oversized_request(server):
    policy = make_remote(server.url)
    assert policy.link.max_message == 1 << 20
    rng = np.random.default_rng(0)
    big = [Observation({c: rng.integers(0, 255, (SIDE, SIDE, 3), dtype=np.uint8)
                        for c in ("front", "wrist")}, np.zeros(4, np.float32), "go")
           for _ in range(40)]  # 2.2 MB of images
    with pytest.raises(RemotePolicyError, match=r"over the server's limit of 1\.0 MB"):
        policy.batch_infer(big)
    assert policy.batch_infer(big[:2]).shape == (2, 8, 4)  # the link is still open

    with connect(server.url, compression=None, max_size=None) as raw:
        raw.recv(timeout=60)
        raw.send(b"\x00" * (2 << 20))
        with pytest.raises(ConnectionClosed) as closed:
            raw.recv(timeout=60)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
    assert policy.batch_infer(big[:1]).shape == (1, 8, 4)  # others are still served
    policy.close()
