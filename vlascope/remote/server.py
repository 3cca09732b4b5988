"""``vlascope serve``: one policy plugin behind a websocket, for one or more clients.

The protocol is openpi's with extensions. On connect the server sends its metadata (a map;
ours holds a ``vlascope`` entry with the protocol version, the policy's description and the
limits). Then every message is one request and gets one answer:

- an openpi observation map (``observation/<camera>``, ``observation/state``, ``prompt``)
  -> ``{"actions": (horizon, action_dim), "server_timing": ...}``; an error is a text frame,
  as openpi's server sends it, so unmodified openpi clients work;
- ``{"vlascope": "infer", "observations": batch, "hooks": [...], "define": [...],
  "release": [...], "common_noise": bool}`` -> ``{"actions": (B, horizon, A), "captured":
  [...]}``: batched inference with hook operations (``core/hook_ops.py``) bound for the
  call; ``define`` uploads operations once per connection, ``release`` drops them;
- ``{"vlascope": "attention" | "reset" | "describe", ...}``.

An extension's error is ``{"error": message}`` and the connection stays open. Every message
is checked (types, shapes, dtypes, sizes, names) before the policy sees it; nothing
received is ever evaluated, and no input can crash the server.
"""

from __future__ import annotations

import hmac
import http
import ipaddress
import logging
import queue
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .. import __version__
from ..core.errors import VLAScopeError
from ..core.hook_ops import At, Capture, HookOp, StepEdit, op_from_wire
from .messages import (
    MAX_BATCH,
    PROTOCOL,
    decode_batch,
    describe,
    openpi_to_observation,
)
from .messages import (
    field as get,
)
from .wire import WireError, has_key, pack, unpack

log = logging.getLogger("vlascope.serve")

#: Largest message a server accepts unless told otherwise (a batch of 100 two-camera
#: 224 px frames is 30 MB).
DEFAULT_MAX_MESSAGE = 256 << 20
MAX_OPS = 4096  # hook operations one connection may keep defined


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class Session:
    """One client's state: the hook operations it defined (bound until released), and its
    episode's state in the policy (its noise stream), so clients do not share one."""

    ops: dict[int, HookOp | StepEdit] = field(default_factory=dict)
    episode: Any = None


class PolicyServer:
    """Answers requests for ``policy``; ``handle`` is the whole protocol, transport-free."""

    def __init__(self, policy: Any, plugin: str, *, max_message: int = DEFAULT_MAX_MESSAGE,
                 max_batch: int = MAX_BATCH, openpi_cameras: dict[str, str] | None = None):
        self.policy, self.plugin = policy, plugin
        self.max_message, self.max_batch = int(max_message), int(max_batch)
        self.openpi_cameras = dict(openpi_cameras or {})
        self._lock = threading.Lock()  # one forward pass at a time: one model, one device
        self._calls: queue.Queue | None = None  # set while run_policy_thread() serves
        self._stopped = threading.Event()
        self._layers = set(policy.layers()) if callable(getattr(policy, "layers", None)) \
            else set()

    # Where the policy runs ----------------------------------------------------------------
    def run_policy_thread(self, stop: threading.Event) -> None:
        """Run every policy call in the calling thread (the one that built the policy) until
        ``stop`` is set. torch's CPU thread pool belongs to that thread: calls made from the
        connections' threads start a second pool that fights the first for the cores (a
        one-observation call of the reference policy took 24 ms instead of 11 ms on 2 cores,
        measured)."""
        self._calls = queue.Queue()
        try:
            while not stop.is_set():
                try:
                    call, box, done = self._calls.get(timeout=0.1)
                except queue.Empty:
                    continue
                try:
                    box.append((True, call()))
                except BaseException as e:  # noqa: BLE001 - handed to the waiting request
                    box.append((False, e))
                done.set()
        finally:
            self._stopped.set()

    def _run(self, call: Callable[[], Any]) -> Any:
        """``call()`` where the policy runs: in the policy thread when one serves, else
        here; one call at a time either way."""
        if self._calls is None:
            with self._lock:
                return call()
        box: list[tuple[bool, Any]] = []
        done = threading.Event()
        self._calls.put((call, box, done))
        while not done.wait(0.1):
            if self._stopped.is_set():
                raise VLAScopeError("the server is shutting down")
        ok, value = box[0]
        if ok:
            return value
        raise value

    def metadata(self) -> dict[str, Any]:
        description = self._run(lambda: describe(self.policy, self.plugin))
        return {"vlascope": {"protocol": PROTOCOL, "version": __version__,
                             "policy": description,
                             "limits": {"max_message": self.max_message,
                                        "max_batch": self.max_batch}}}

    # The protocol -------------------------------------------------------------------------
    def handle(self, session: Session, raw: bytes | str) -> bytes | str:
        """One request -> one answer; never raises for anything a client sends."""
        t0 = time.monotonic()
        openpi = True
        try:
            try:
                msg = unpack(raw)
            except WireError:  # answered as the kind of request it meant to be
                openpi = not has_key(raw, "vlascope")
                raise
            if not isinstance(msg, dict):
                raise WireError(f"a request must be a map, got {type(msg).__name__}")
            openpi = "vlascope" not in msg
            reply = self._openpi(msg) if openpi else self._extension(session, msg)
            reply["server_timing"] = {"infer_ms": (time.monotonic() - t0) * 1000}
            return pack(reply)  # in here: an answer that cannot be encoded is an error too
        except VLAScopeError as e:
            log.info("refused a request: %s", e)
            return f"vlascope serve: {e}" if openpi else pack({"error": str(e)})
        except Exception as e:  # noqa: BLE001 - a policy bug must not take the server down
            log.exception("request failed")
            text = f"{type(e).__name__}: {e}"
            return f"vlascope serve: {text}" if openpi else pack({"error": text})

    def _openpi(self, msg: dict) -> dict[str, Any]:
        cams = getattr(self.policy, "cameras", None)
        obs = openpi_to_observation(msg, cams, self.openpi_cameras)
        actions = self._run(lambda: self._actions([obs]))
        return {"actions": actions[0]}

    def _extension(self, session: Session, msg: dict) -> dict[str, Any]:
        op = get(msg, "vlascope", str, "request")
        if op == "infer":
            return self._infer(session, msg)
        if op == "attention":
            return self._attention(msg)
        if op == "reset":
            if callable(getattr(self.policy, "reset", None)):
                self._in_episode(session, self.policy.reset)
            return {"ok": True}
        if op == "describe":
            return {"description": self.metadata()["vlascope"]["policy"]}
        raise WireError(f"unknown request '{op}' (known: infer, attention, reset, describe)")

    def _actions(self, observations: list) -> np.ndarray:
        actions = self.policy.batch_infer(observations)
        arr = np.asarray(actions, dtype=np.float32)
        if arr.ndim == 2:
            arr = arr[:, None, :]
        if arr.ndim != 3 or arr.shape[0] != len(observations):
            raise VLAScopeError(f"{self.plugin} returned actions of shape {arr.shape} for "
                                f"{len(observations)} observations")
        return arr

    def _bind(self, session: Session, msg: dict) -> list[tuple[str, HookOp, int | None]]:
        for key in get(msg, "release", list, "infer", default=[]):
            if isinstance(key, int):
                session.ops.pop(key, None)
        for item in get(msg, "define", list, "infer", default=[]):
            if not isinstance(item, dict):
                raise WireError("infer: every 'define' entry must be a map")
            key = get(item, "key", int, "define")
            session.ops[key] = op_from_wire(get(item, "op", dict, "define"))
        if len(session.ops) > MAX_OPS:
            raise WireError(f"more than {MAX_OPS} hook operations defined on one connection")
        hooks = []
        for item in get(msg, "hooks", list, "infer", default=[]):
            if not isinstance(item, dict):
                raise WireError("infer: every 'hooks' entry must be a map")
            layer = get(item, "layer", str, "hook")
            key = get(item, "op", int, "hook")
            t = get(item, "t", (int, type(None)), "hook", default=None)
            if layer not in self._layers:
                raise WireError(f"no hook point '{layer}' (known: "
                                f"{', '.join(sorted(self._layers)) or 'none'})")
            op = session.ops.get(key)
            if op is None:
                raise WireError(f"hook operation {key} was never defined on this connection")
            if (t is None) != isinstance(op, HookOp):
                raise WireError(f"hook operation {key} ({op.kind}) "
                                f"{'needs' if t is None else 'takes no'} a step 't'")
            hooks.append((layer, op, t))
        return hooks

    def _infer(self, session: Session, msg: dict) -> dict[str, Any]:
        observations = decode_batch(get(msg, "observations", dict, "infer"), self.max_batch)
        hooks = self._bind(session, msg)
        pinned = get(msg, "common_noise", bool, "infer", default=False)

        def infer() -> np.ndarray:
            with ExitStack() as stack:
                if pinned and callable(getattr(self.policy, "common_noise", None)):
                    stack.enter_context(self.policy.common_noise())
                for layer, op, t in hooks:
                    if isinstance(op, Capture):
                        op.values.clear()
                    stack.enter_context(self.policy.hook(layer, op if t is None else At(op, t)))
                return self._actions(observations)

        actions = self._in_episode(session, infer)
        captured = [{"key": key, "values": list(op.values)} for key, op in session.ops.items()
                    if isinstance(op, Capture) and any(o is op for _, o, _ in hooks)]
        return {"actions": actions, "captured": captured}

    def _in_episode(self, session: Session, call: Callable[[], Any]) -> Any:
        """``call()`` with this client's episode state in the policy, where the policy keeps
        one (``episode_state``/``set_episode_state``, e.g. a flow head's noise stream):
        clients served at once (a sweep's workers) then each replay their own episodes
        exactly, as with a policy of their own. Calls run one at a time (``_run``)."""
        keeps = callable(getattr(self.policy, "episode_state", None))

        def run() -> Any:
            if keeps and session.episode is not None:
                self.policy.set_episode_state(session.episode)
            try:
                return call()
            finally:
                if keeps:
                    session.episode = self.policy.episode_state()

        return self._run(run)

    def _attention(self, msg: dict) -> dict[str, Any]:
        if not callable(getattr(self.policy, "attention_maps", None)):
            raise VLAScopeError(f"{self.plugin} has no attention maps")
        observations = decode_batch(get(msg, "observations", dict, "attention"),
                                    self.max_batch)
        maps = self._run(lambda: self.policy.attention_maps(observations))
        return {"maps": [m.detach().float().cpu().numpy() if isinstance(m, torch.Tensor)
                         else np.asarray(m, np.float32) for m in maps]}


# Transport --------------------------------------------------------------------------------
def _authorizer(token: str | None) -> Callable[..., Any]:
    """``process_request``: ``/healthz`` as openpi's server, and the token check (openpi's
    ``Authorization: Api-Key <token>`` header, or ``Bearer <token>``)."""

    def check(connection: Any, request: Any) -> Any:
        if request.path == "/healthz":
            return connection.respond(http.HTTPStatus.OK, "OK\n")
        if token is None:
            return None
        given = request.headers.get("Authorization", "")
        scheme, _, value = given.partition(" ")
        if scheme in ("Api-Key", "Bearer") and hmac.compare_digest(value.encode(),
                                                                   token.encode()):
            return None
        return connection.respond(http.HTTPStatus.UNAUTHORIZED,
                                  "this policy server needs a token\n")

    return check


def serve(server: PolicyServer, *, host: str = "127.0.0.1", port: int = 8000,
          unix: str | None = None, token: str | None = None) -> Any:
    """Start listening (TCP, or a Unix socket at ``unix``); returns the websockets server
    (``serve_forever()``, ``shutdown()``, ``socket``). Refuses to listen beyond loopback
    without a token."""
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.server import serve as ws_serve
    from websockets.sync.server import unix_serve

    if unix is None and not is_loopback(host) and not token:
        raise VLAScopeError(f"listening on {host} (beyond this machine) needs a token "
                            "(--token or VLASCOPE_TOKEN)")
    meta = pack(server.metadata())

    def handler(connection: Any) -> None:
        session = Session()
        peer = connection.remote_address  # unreadable once the socket is closed
        log.info("client %s connected", peer)
        try:
            connection.send(meta)
            while True:
                connection.send(server.handle(session, connection.recv()))
        except ConnectionClosed:
            log.info("client %s left", peer)

    options = {"compression": None, "max_size": server.max_message,
               "process_request": _authorizer(token)}
    if unix is not None:
        return unix_serve(handler, unix, **options)
    return ws_serve(handler, host, port, **options)
