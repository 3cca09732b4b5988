"""What travels between ``vlascope serve`` and the ``remote`` policy, and the checks every
received message passes before anything acts on it.

A batch of observations travels as one stacked array per camera (B, H, W, 3) uint8, the
states as (B, S), the instructions as B strings: the ISS path sends a whole batch of masked
frames in one message, and the server hands the policy views into the received arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..core.policy import Observation, hook_points
from .wire import WireError

PROTOCOL = 1
#: Defaults a server announces and enforces; ``vlascope serve`` can raise them.
MAX_BATCH = 4096
MAX_IMAGE_SIDE = 4096
MAX_TEXT = 10_000


def field(msg: dict, key: str, kinds: type | tuple[type, ...], what: str,
          default: Any = ...) -> Any:
    """``msg[key]`` checked against ``kinds`` (booleans are not integers here)."""
    if key not in msg:
        if default is not ...:
            return default
        raise WireError(f"{what}: missing '{key}'")
    value = msg[key]
    allowed = kinds if isinstance(kinds, tuple) else (kinds,)
    if (isinstance(value, bool) and bool not in allowed) or not isinstance(value, allowed):
        raise WireError(f"{what}: '{key}' must be {' or '.join(k.__name__ for k in allowed)}, "
                        f"got {type(value).__name__}")
    return value


def _plain(value: Any, depth: int = 0) -> bool:
    """Data that msgpack carries as it is (scene extras that can travel)."""
    if depth > 8:
        return False
    if value is None or isinstance(value, str | int | float | bool | np.generic):
        return True
    if isinstance(value, np.ndarray):
        return value.dtype.kind in "biuf"
    if isinstance(value, list | tuple):
        return all(_plain(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v, depth + 1) for k, v in value.items())
    return False


def encode_batch(observations: Sequence[Observation]) -> dict[str, Any]:
    """Observations -> one message part; every observation must have the same cameras and
    image sizes (a batch is stacked per camera)."""
    if not observations:
        raise WireError("a batch needs at least one observation")
    first = observations[0]
    for obs in observations:
        obs.check_images()
        if list(obs.images) != list(first.images) or any(
                obs.images[c].shape != first.images[c].shape for c in first.images):
            raise WireError("every observation of a batch must have the same cameras and "
                            "image sizes")
    images = {c: np.stack([o.images[c] for o in observations]) for c in first.images}
    states = [np.asarray(o.state, np.float32).reshape(-1) for o in observations]
    if len({s.shape for s in states}) > 1:
        raise WireError("every observation of a batch must have the same state size")
    out: dict[str, Any] = {"images": images, "state": np.stack(states),
                           "instruction": [str(o.instruction) for o in observations]}
    extras = [{k: v for k, v in o.extras.items() if _plain(v)} for o in observations]
    if any(extras):
        out["extras"] = extras
    return out


def decode_batch(msg: dict, max_batch: int = MAX_BATCH) -> list[Observation]:
    """One message part -> observations whose images are views of the received arrays."""
    what = "observations"
    images = field(msg, "images", dict, what)
    state = field(msg, "state", np.ndarray, what)
    texts = field(msg, "instruction", list, what)
    if state.ndim != 2 or state.dtype.kind != "f" or not np.all(np.isfinite(state)):
        raise WireError(f"{what}: 'state' must be a finite float array (batch, state_dim)")
    n = state.shape[0]
    if not 1 <= n <= max_batch:
        raise WireError(f"{what}: a batch of {n} observations (this server takes 1 to "
                        f"{max_batch})")
    if len(texts) != n or not all(isinstance(t, str) and len(t) <= MAX_TEXT for t in texts):
        raise WireError(f"{what}: 'instruction' must be {n} strings of at most {MAX_TEXT} "
                        "characters")
    for cam, arr in images.items():
        if not isinstance(cam, str) or not isinstance(arr, np.ndarray) or arr.dtype != np.uint8 \
                or arr.ndim != 4 or arr.shape[0] != n or arr.shape[3] != 3 \
                or max(arr.shape[1:3]) > MAX_IMAGE_SIDE:
            raise WireError(f"{what}: camera {cam!r} must be a uint8 array of shape ({n}, H, "
                            f"W, 3) with sides up to {MAX_IMAGE_SIDE}, got "
                            f"{getattr(arr, 'dtype', type(arr).__name__)} "
                            f"{getattr(arr, 'shape', '')}")
    extras = field(msg, "extras", list, what, default=[{}] * n)
    if len(extras) != n or not all(isinstance(e, dict) for e in extras):
        raise WireError(f"{what}: 'extras' must be {n} maps")
    return [Observation({c: a[i] for c, a in images.items()}, state[i], texts[i],
                        dict(extras[i])) for i in range(n)]


# openpi's own observation dicts --------------------------------------------------------
def openpi_to_observation(msg: dict, cameras: Sequence[str] | None,
                          aliases: dict[str, str] | None = None) -> Observation:
    """An openpi observation (``observation/<camera>`` images, ``observation/state``,
    ``prompt``) as ours. Image keys map to cameras by ``aliases`` (key -> camera), else by
    their last path part; CHW images are transposed."""
    aliases = aliases or {}
    images, state, prompt = {}, None, msg.get("prompt", "")
    if not isinstance(prompt, str) or len(prompt) > MAX_TEXT:
        raise WireError("openpi observation: 'prompt' must be a string")
    for key, value in msg.items():
        if not isinstance(key, str):
            raise WireError("openpi observation: keys must be strings")
        name = key.split("/")[-1]
        if name == "state" or key == "state":
            state = value
            continue
        cam = aliases.get(key) or (name if cameras is None or name in cameras else None)
        if cam is None or not isinstance(value, np.ndarray) or value.ndim != 3:
            continue
        if value.shape[0] == 3 and value.shape[2] != 3:
            value = value.transpose(1, 2, 0)
        if value.dtype != np.uint8 or value.shape[2] != 3 or max(value.shape[:2]) > MAX_IMAGE_SIDE:
            raise WireError(f"openpi observation: image {key!r} must be uint8 HxWx3, got "
                            f"{value.dtype} {value.shape}")
        images[cam] = value
    missing = [c for c in (cameras or ()) if c not in images]
    if missing:
        raise WireError(f"openpi observation: no image for camera(s) {', '.join(missing)} "
                        f"(keys: {', '.join(map(str, msg))}; map keys to cameras with "
                        "`vlascope serve --openpi-camera KEY=CAMERA`)")
    if state is None:
        state = np.zeros(0, np.float32)
    if not isinstance(state, np.ndarray) or state.dtype.kind not in "biuf" or state.ndim != 1 \
            or not np.all(np.isfinite(state)):
        raise WireError("openpi observation: 'observation/state' must be a 1-d array of "
                        "finite numbers")
    return Observation(images, state.astype(np.float32), prompt)


def observation_to_openpi(obs: Observation, image_keys: dict[str, str] | None = None,
                          state_key: str = "observation/state",
                          prompt_key: str = "prompt") -> dict[str, Any]:
    """Ours as an openpi observation (camera -> ``observation/<camera>`` unless mapped)."""
    image_keys = image_keys or {}
    out: dict[str, Any] = {image_keys.get(c, f"observation/{c}"): img
                           for c, img in obs.images.items()}
    out[state_key] = np.asarray(obs.state, np.float32)
    out[prompt_key] = obs.instruction
    return out


# The policy's description --------------------------------------------------------------
CAPABILITIES = ("reset", "common_noise", "hook", "visual_token_layout", "readout_positions",
                "token_groups", "attention_maps")


def _dims(policy: Any) -> dict[str, int | None]:
    cfg = getattr(policy, "cfg", None)
    out = {}
    for name in ("state_dim", "action_dim", "horizon"):
        value = getattr(policy, name, None) or getattr(cfg, name, None)
        out[name] = int(value) if isinstance(value, int | np.integer) and value else None
    return out


def _known(call: Any, *args: Any) -> Any:
    """A capability's answer, or None when the policy knows it only after a forward pass."""
    try:
        return call(*args)
    except Exception:  # noqa: BLE001 - e.g. an adapter's layout before its first pass
        return None


def describe(policy: Any, plugin: str) -> dict[str, Any]:
    """Everything a client needs to drive ``policy`` as if it were in process."""
    caps = [c for c in CAPABILITIES if callable(getattr(policy, c, None))]
    if "hook" in caps and not callable(getattr(policy, "layers", None)):
        caps.remove("hook")
    cams = getattr(policy, "cameras", None)
    size = getattr(policy, "image_size", None)
    groups = getattr(policy, "token_groups", None) if "token_groups" in caps else None
    points = []
    if "hook" in caps:
        for p in hook_points(policy):
            points.append({"name": p.name, "stack": p.stack, "tokens": list(p.tokens),
                           "groups": _known(groups, p.name) if groups else {}})
    layout = _known(policy.visual_token_layout) if "visual_token_layout" in caps else None
    readout = _known(policy.readout_positions) if "readout_positions" in caps else None
    return {
        "plugin": plugin,
        "policy_id": str(getattr(policy, "policy_id", plugin)),
        "weights_hash": str(getattr(policy, "weights_hash", "") or ""),
        "cameras": None if cams is None else [str(c) for c in cams],
        "image_size": None if size is None else [int(size[0]), int(size[1])],
        "n_action_steps": int(getattr(policy, "n_action_steps", 1) or 1),
        "device": str(getattr(policy, "device", "") or ""),
        **_dims(policy),
        "capabilities": caps,
        "hook_points": points,
        "visual_token_layout": None if layout is None else {
            str(c): {"grid": [int(g) for g in v["grid"]],
                     "positions": [int(p) for p in v["positions"]]} for c, v in layout.items()},
        "readout_positions": None if readout is None else [int(p) for p in readout],
    }
