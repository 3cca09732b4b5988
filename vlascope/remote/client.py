"""The ``remote`` policy plugin: a policy served by ``vlascope serve`` (or any openpi server)
used as if it were in process: ``--policy remote --policy-option url=ws://HOST:PORT``.

Against ``vlascope serve`` it has whatever the served policy has (hook points, common noise,
the visual token layout, attention maps); its ``hook(name, fn)`` takes the hook operations
of ``core/hook_ops.py``, which the server installs on its own copy of the policy. Against a
plain openpi server it has ``batch_infer`` only (one request per observation), and
``unavailable`` says why the rest is missing.
"""

from __future__ import annotations

import inspect
import itertools
import threading
import weakref
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import numpy as np
import torch

from ..core.errors import PluginError, PolicyConnectionLost, UnknownNameError, VLAScopeError
from ..core.hook_ops import At, Capture, HookOp, StepEdit
from ..core.noise import ThreadPin
from ..core.policy import Observation
from .messages import PROTOCOL, encode_batch, observation_to_openpi
from .server import is_loopback
from .wire import WireError, pack, unpack


class RemotePolicyError(PluginError):
    """The server refused a request, or the address does not lead to a policy server."""


def _parse_pairs(text: str | None, what: str) -> dict[str, str]:
    out = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        if not sep:
            raise VLAScopeError(f"{what} expects CAMERA=KEY pairs, got '{part}'")
        out[key.strip()] = value.strip()
    return out


def _mb(n: int) -> str:
    return f"{n / (1 << 20):.1f} MB"


class Link:
    """One websocket connection to a policy server: connect, one answer per request."""

    def __init__(self, url: str, token: str | None = None, timeout: float = 60.0,
                 connect_timeout: float = 10.0):
        url = url.strip()
        if "://" not in url:
            url = f"ws://{url}"
        self.url, self.token = url, token
        self.timeout, self.connect_timeout = float(timeout), float(connect_timeout)
        self.max_message: int | None = None
        self._ws: Any = None

    @property
    def connected(self) -> bool:
        return self._ws is not None

    def connect(self) -> dict[str, Any]:
        """Open the connection; returns the server's metadata."""
        from websockets.exceptions import (
            ConnectionClosed,
            InvalidHandshake,
            InvalidStatus,
            InvalidURI,
        )
        from websockets.sync.client import connect, unix_connect

        headers = {"Authorization": f"Api-Key {self.token}"} if self.token else None
        options = {"compression": None, "max_size": None, "additional_headers": headers,
                   "open_timeout": self.connect_timeout}
        if "legacy" in inspect.signature(connect).parameters:
            options["legacy"] = True  # websockets 17.1+: this link outlives any with-block
        scheme, _, rest = self.url.partition("://")
        try:
            if scheme in ("unix", "ws+unix"):
                ws = unix_connect(rest, uri="ws://localhost/", **options)
            elif scheme in ("ws", "wss"):
                host = rest.split("/")[0].rsplit(":", 1)[0].strip("[]")
                local = is_loopback(host) or host == "localhost"
                ws = connect(self.url, proxy=None if local else True, **options)
            else:
                raise RemotePolicyError(f"'{self.url}' is not a policy server address "
                                        "(ws://HOST:PORT or unix:///PATH)")
        except InvalidStatus as e:
            code = e.response.status_code
            if code == 401:
                raise RemotePolicyError(f"the policy server at {self.url} needs a token "
                                        "(--policy-option token=...)") from None
            raise RemotePolicyError(f"{self.url} is not a policy server (it answered HTTP "
                                    f"{code} to a websocket request)") from None
        except InvalidURI:
            raise RemotePolicyError(f"'{self.url}' is not a valid websocket address") from None
        except (InvalidHandshake, EOFError) as e:
            why = e.__cause__ or e  # InvalidMessage's cause says what came back instead
            raise RemotePolicyError(f"{self.url} does not speak the websocket protocol "
                                    f"({why})") from None
        except ConnectionClosed:  # the peer hung up before answering the handshake
            raise RemotePolicyError(f"{self.url} closed the connection without a websocket "
                                    "answer (not a policy server?)") from None
        except TimeoutError:
            raise RemotePolicyError(f"{self.url} did not answer within "
                                    f"{self.connect_timeout:g} s") from None
        except OSError as e:
            raise RemotePolicyError(f"no policy server at {self.url} "
                                    f"({e.strerror or e})") from None
        try:
            first = ws.recv(timeout=self.connect_timeout)
            meta = unpack(first)
            if not isinstance(meta, dict):
                raise WireError("metadata must be a map")
        except (TimeoutError, WireError, Exception) as e:  # noqa: BLE001
            ws.close()
            raise RemotePolicyError(f"{self.url} speaks another protocol (its first message "
                                    f"is not openpi metadata: {e})") from None
        self._ws = ws
        return meta

    def close(self) -> None:
        if self._ws is not None:
            ws, self._ws = self._ws, None
            ws.close()

    def exchange(self, message: dict[str, Any]) -> dict[str, Any]:
        """Send one request, return its answer; a text answer is an openpi error."""
        from websockets.exceptions import ConnectionClosed

        data = pack(message)
        if self.max_message is not None and len(data) > self.max_message:
            raise RemotePolicyError(
                f"a request of {_mb(len(data))} is over the server's limit of "
                f"{_mb(self.max_message)} (a smaller batch, or `vlascope serve "
                "--max-message-mb`)")
        if self._ws is None:
            raise PolicyConnectionLost(f"not connected to the policy server at {self.url}")
        try:
            self._ws.send(data)
            answer = self._ws.recv(timeout=self.timeout)
        except TimeoutError:
            self.close()  # a late answer would be read as the next one's
            raise PolicyConnectionLost(
                f"the policy server at {self.url} did not answer within {self.timeout:g} s "
                "(--policy-option timeout=SECONDS)") from None
        except ConnectionClosed as e:
            self._ws = None
            rcvd = e.rcvd
            if rcvd is not None and rcvd.code == 1009:
                raise RemotePolicyError(f"the policy server at {self.url} refused a request "
                                        f"of {_mb(len(data))} as too big") from None
            raise PolicyConnectionLost(f"the policy server at {self.url} went away "
                                       f"({rcvd.reason or rcvd.code if rcvd else 'no close frame'}"
                                       ")") from None
        except OSError as e:
            self._ws = None
            raise PolicyConnectionLost(f"the policy server at {self.url} went away "
                                       f"({e.strerror or e})") from None
        if isinstance(answer, str):
            raise RemotePolicyError(f"the policy server at {self.url}: {answer.strip()}")
        reply = unpack(answer)
        if not isinstance(reply, dict):
            raise WireError(f"the policy server at {self.url} answered with a "
                            f"{type(reply).__name__}")
        if "error" in reply:
            raise RemotePolicyError(f"the policy server at {self.url}: {reply['error']}")
        return reply


def _identity(metadata: dict[str, Any], url: str) -> tuple[str, str]:
    """(policy id, weights hash) of what a server's metadata says it serves."""
    ours = metadata.get("vlascope")
    if isinstance(ours, dict):
        d = ours.get("policy") or {}
        return f"remote:{d.get('policy_id', '?')}", str(d.get("weights_hash", ""))
    return f"openpi:{url}", ""


class RemotePolicy:
    """The contract's call, the recorded identity, and the connection's life cycle."""

    def __init__(self, link: Link, metadata: dict[str, Any], *, cameras: Sequence[str] | None,
                 image_size: tuple[int, int] | None, openpi_keys: dict[str, Any]):
        self.link = link
        self._lock = threading.RLock()
        self._openpi_keys = openpi_keys
        self._noise = ThreadPin()  # common_noise() blocks of each thread
        self._active: list[tuple[str, Any]] = []
        self._keys = itertools.count(1)
        self._uploaded: dict[int, tuple[weakref.ref, int]] = {}
        self._by_key: dict[int, weakref.ref] = {}
        self._released: list[int] = []
        self._adopt(metadata, cameras, image_size)

    # Identity -------------------------------------------------------------------------
    def _adopt(self, metadata: dict[str, Any], cameras: Sequence[str] | None,
               image_size: tuple[int, int] | None) -> None:
        ours = metadata.get("vlascope")
        if isinstance(ours, dict):
            if ours.get("protocol") != PROTOCOL:
                raise RemotePolicyError(f"{self.link.url} speaks VLAScope protocol "
                                        f"{ours.get('protocol')}, this client {PROTOCOL}")
            d = ours.get("policy") or {}
            self.description = d
            self.link.max_message = int(ours.get("limits", {}).get("max_message", 0)) or None
            self.max_batch = int(ours.get("limits", {}).get("max_batch", 0)) or None
            self.policy_id, self.weights_hash = _identity(metadata, self.link.url)
            self.cameras = tuple(d["cameras"]) if d.get("cameras") is not None else None
            self.image_size = tuple(d["image_size"]) if d.get("image_size") else None
            self.n_action_steps = int(d.get("n_action_steps", 1))
            self.device = f"{d.get('device') or '?'} (server)"  # where it computes
            self.state_dim, self.action_dim, self.horizon = (
                d.get("state_dim"), d.get("action_dim"), d.get("horizon"))
            self.served_by = "vlascope"
        else:  # a plain openpi server: what we know is what the user told us
            self.description = {"plugin": "openpi", "capabilities": [], "hook_points": []}
            self.max_batch = None
            self.policy_id, self.weights_hash = _identity(metadata, self.link.url)
            self.cameras = tuple(cameras) if cameras else None
            self.image_size = image_size
            self.n_action_steps = 1
            self.device = "? (server)"
            self.state_dim = self.action_dim = self.horizon = None
            self.served_by = "openpi"
        if cameras and self.served_by == "vlascope":
            self.cameras = tuple(cameras)

    @property
    def url(self) -> str:
        return self.link.url

    @property
    def unavailable(self) -> str:
        """Why the capabilities a served policy lacks are missing (empty when none are)."""
        if self.served_by == "openpi":
            return (f"{self.url} is a plain openpi server: it answers one observation with "
                    "actions, so hook points, token ISS, attention, SAEs and steering are "
                    "unavailable")
        return ""

    def close(self) -> None:
        with self._lock:
            self.link.close()

    def reconnect(self) -> None:
        """A fresh connection (after the server went away); it must serve the same policy."""
        with self._lock:
            self.link.close()
            self._connect_again()

    def _connect_again(self, lazily: bool = False) -> None:
        """Connect anew; ``lazily`` (a job's call found the link down): a server that is
        still gone ends the job as a lost connection, so its work is kept."""
        try:
            meta = self.link.connect()
        except RemotePolicyError as e:
            if not lazily:
                raise
            raise PolicyConnectionLost(f"the policy server at {self.url} is still gone "
                                       f"({e})") from None
        now = _identity(meta, self.url)
        if now != (self.policy_id, self.weights_hash):
            self.link.close()
            raise RemotePolicyError(f"{self.url} now serves {now[0]}, not {self.policy_id}; "
                                    "load it as a new policy")
        self._adopt(meta, self.cameras if self.served_by == "openpi" else None,
                    self.image_size if self.served_by == "openpi" else None)
        self._uploaded.clear()
        self._by_key.clear()
        self._released.clear()

    def _exchange(self, message: dict[str, Any]) -> dict[str, Any]:
        if not self.link.connected:  # it went away before: a job that needs it now
            self._connect_again(lazily=True)
        return self.link.exchange(message)

    def _described(self, key: str) -> Any:
        """A description entry, asked again when the policy knew it only after a forward
        pass (an adapter's layout)."""
        value = self.description.get(key)
        unknown = value is None or (key == "hook_points" and any(
            p.get("groups") is None for p in value))
        if unknown and self.served_by == "vlascope":
            with self._lock:
                self.description = self._exchange({"vlascope": "describe"})["description"]
            value = self.description.get(key)
        return value

    # The contract ---------------------------------------------------------------------
    def batch_infer(self, observations: Sequence[Observation]) -> np.ndarray:
        observations = list(observations)
        if not observations:
            raise VLAScopeError("batch_infer needs at least one observation")
        with self._lock:
            if self.served_by == "openpi":
                return self._openpi_infer(observations)
            if self.max_batch and len(observations) > self.max_batch:
                raise RemotePolicyError(f"a batch of {len(observations)} is over the "
                                        f"server's limit of {self.max_batch}")
            request = {"vlascope": "infer", "observations": encode_batch(observations),
                       "common_noise": self._noise.pinned, **self._hook_request()}
            reply = self._exchange(request)
            self._deliver(reply.get("captured", []))
            return self._action_array(reply, len(observations))

    def _openpi_infer(self, observations: list[Observation]) -> np.ndarray:
        chunks = []
        for obs in observations:
            reply = self._exchange(observation_to_openpi(obs, **self._openpi_keys))
            chunks.append(self._action_array(reply, None))
        return np.stack(chunks)

    def _action_array(self, reply: dict[str, Any], batch: int | None) -> np.ndarray:
        actions = reply.get("actions")
        if not isinstance(actions, np.ndarray) or actions.dtype.kind not in "fiu":
            raise RemotePolicyError(f"the policy server at {self.url} answered without "
                                    "numeric 'actions'")
        want = 2 if batch is None else 3
        if actions.ndim == want - 1:  # one action per observation
            actions = actions[..., None, :]
        if actions.ndim != want or (batch is not None and actions.shape[0] != batch):
            raise RemotePolicyError(f"the policy server at {self.url} answered actions of "
                                    f"shape {actions.shape}")
        return np.array(actions, dtype=np.float32)  # writable, as an in-process policy's

    # Hook operations on the wire -------------------------------------------------------
    def _key_of(self, op: HookOp | StepEdit, define: list[dict[str, Any]]) -> int:
        known = self._uploaded.get(id(op))
        if known is not None and known[0]() is op:
            return known[1]
        key = next(self._keys)
        released = self._released

        def gone(_ref: weakref.ref, key: int = key) -> None:
            released.append(key)

        self._uploaded[id(op)] = (weakref.ref(op, gone), key)
        self._by_key[key] = weakref.ref(op)
        define.append({"key": key, "op": op.to_wire()})
        return key

    def _hook_request(self) -> dict[str, Any]:
        define: list[dict[str, Any]] = []
        hooks = []
        for layer, fn in self._active:
            target = fn.edit if isinstance(fn, At) else fn
            hooks.append({"layer": layer, "op": self._key_of(target, define),
                          "t": int(fn.t) if isinstance(fn, At) else None})
        release, self._released[:] = list(self._released), []
        for key in release:
            self._by_key.pop(key, None)
        stale = [i for i, (ref, _) in self._uploaded.items() if ref() is None]
        for i in stale:
            del self._uploaded[i]
        return {"hooks": hooks, "define": define, "release": release}

    def _deliver(self, captured: list[Any]) -> None:
        for item in captured:
            ref = self._by_key.get(item.get("key")) if isinstance(item, dict) else None
            op = ref() if ref is not None else None
            if isinstance(op, Capture):
                op.values.extend(np.array(v) for v in item.get("values", []))


class _Reset:
    def reset(self) -> None:
        """Restart the served policy's per-episode state (its noise stream)."""
        with self._lock:
            self._exchange({"vlascope": "reset"})


class _CommonNoise:
    def common_noise(self) -> AbstractContextManager[None]:
        """Requests made in this block, on this thread, run under the server's common noise."""
        return self._noise.common()


class _Hooks:
    def layers(self) -> dict[str, None]:
        """The served policy's hook points (their modules stay on the server)."""
        return {p["name"]: None for p in self.description.get("hook_points", [])}

    @contextmanager
    def hook(self, name: str, fn: Any) -> Iterator[None]:
        """Install a hook operation at ``name`` on the server for the calls in this block."""
        if name not in self.layers():
            raise UnknownNameError("hook point", name, list(self.layers()))
        if not isinstance(fn, HookOp):
            raise PluginError(
                f"a {type(fn).__name__} cannot act on a policy in another process: hooks of "
                "a remote policy are the data operations of vlascope.core.hook_ops")
        entry = (name, fn)
        with self._lock:
            self._active.append(entry)
        try:
            yield
        finally:
            with self._lock:
                self._active.remove(entry)

    def token_groups(self, layer: str | None = None) -> dict[str, list[int]]:
        for point in self._described("hook_points"):
            if point["name"] == layer:
                return {k: list(v) for k, v in (point.get("groups") or {}).items()}
        return {}

class _Layout:
    def visual_token_layout(self) -> dict[str, dict]:
        layout = self._described("visual_token_layout")
        if layout is None:
            raise VLAScopeError(f"{self.url}: the visual token layout is known after the "
                                "first forward pass")
        return {c: {"grid": tuple(v["grid"]), "positions": list(v["positions"])}
                for c, v in layout.items()}


class _Readout:
    def readout_positions(self) -> list[int]:
        return list(self._described("readout_positions") or [])


class _Attention:
    def attention_maps(self, observations: Sequence[Observation]) -> list[torch.Tensor]:
        """Per layer, (B, heads, tokens, tokens) attention weights, computed on the server."""
        with self._lock:
            reply = self._exchange({"vlascope": "attention",
                                    "observations": encode_batch(list(observations))})
        return [torch.from_numpy(np.array(m)) for m in reply.get("maps", [])]


_MIXINS = {"reset": _Reset, "common_noise": _CommonNoise, "hook": _Hooks,
           "visual_token_layout": _Layout, "readout_positions": _Readout,
           "attention_maps": _Attention}
_classes: dict[tuple[str, ...], type] = {}


def _policy_class(capabilities: Sequence[str]) -> type:
    """RemotePolicy plus one mixin per capability the served policy has, so the app's
    ``hasattr`` checks see exactly what the server offers."""
    caps = tuple(c for c in _MIXINS if c in capabilities)
    if caps not in _classes:
        bases = tuple(_MIXINS[c] for c in caps)
        _classes[caps] = type("RemotePolicy", (*bases, RemotePolicy), {})
    return _classes[caps]


def make_remote(url: str = "ws://127.0.0.1:8000", token: str | None = None,
                timeout: float = 60.0, connect_timeout: float = 10.0,
                cameras: str | None = None, image_size: str | None = None,
                image_keys: str | None = None, state_key: str = "observation/state",
                prompt_key: str = "prompt") -> RemotePolicy:
    """Connect to a policy server. ``timeout`` bounds every call (seconds); ``cameras``,
    ``image_size`` (HxW) and ``image_keys`` (camera=openpi key, comma separated) describe a
    plain openpi server's policy, which does not say."""
    import os

    token = token or os.environ.get("VLASCOPE_TOKEN") or None
    link = Link(str(url), token, float(timeout), float(connect_timeout))
    meta = link.connect()
    size = None
    if image_size:
        h, _, w = str(image_size).lower().partition("x")
        try:
            size = (int(h), int(w or h))
        except ValueError:
            raise VLAScopeError(f"image_size expects HxW, got '{image_size}'") from None
    cams = [c for c in str(cameras or "").split(",") if c.strip()] or None
    keys = {"image_keys": _parse_pairs(image_keys, "image_keys"), "state_key": state_key,
            "prompt_key": prompt_key}
    caps = (meta.get("vlascope") or {}).get("policy", {}).get("capabilities", []) \
        if isinstance(meta.get("vlascope"), dict) else []
    try:
        return _policy_class(caps)(link, meta, cameras=cams, image_size=size,
                                   openpi_keys=keys)
    except BaseException:
        link.close()
        raise
