"""The wire format: msgpack with numpy arrays encoded as openpi's ``msgpack_numpy`` does
(a map with ``__ndarray__``, ``data``, ``dtype``, ``shape``), so openpi clients and servers
read what we write and we read theirs. Nothing is ever unpickled or evaluated: only plain
values and numeric arrays come out of ``unpack``, and arrays are views of the received
bytes (no second copy)."""

from __future__ import annotations

import math
from typing import Any

import msgpack
import numpy as np

from ..core.errors import VLAScopeError

_ARRAY, _GENERIC = b"__ndarray__", b"__npgeneric__"
NUMERIC_KINDS = "biuf"
#: Arrays with more elements than this are refused whatever the message size (a shape that
#: claims more than its data holds is refused anyway).
MAX_ELEMENTS = 1 << 31


class WireError(VLAScopeError):
    """A message that is not what the protocol says: undecodable, wrong types or shapes."""


def _encode(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind not in NUMERIC_KINDS:
            raise WireError(f"cannot send an array of dtype {obj.dtype}")
        data = np.ascontiguousarray(obj)
        return {_ARRAY: True, b"data": memoryview(data).cast("B") if data.size else b"",
                b"dtype": data.dtype.str, b"shape": list(data.shape)}
    if isinstance(obj, np.generic):
        if obj.dtype.kind not in NUMERIC_KINDS:
            raise WireError(f"cannot send a value of dtype {obj.dtype}")
        return {_GENERIC: True, b"data": obj.item(), b"dtype": obj.dtype.str}
    if isinstance(obj, tuple):
        return list(obj)
    raise WireError(f"cannot send a {type(obj).__name__}")


def _dtype(spec: Any) -> np.dtype:
    if not isinstance(spec, str | bytes) or len(spec) > 8:
        raise WireError("array dtype must be a short string")
    try:
        dtype = np.dtype(spec.decode() if isinstance(spec, bytes) else spec)
    except (TypeError, ValueError):
        raise WireError(f"unknown array dtype {spec!r}") from None
    if dtype.kind not in NUMERIC_KINDS:
        raise WireError(f"refusing an array of dtype {dtype} (numbers only)")
    return dtype


def _decode(obj: dict) -> Any:
    if _ARRAY in obj:
        dtype = _dtype(obj.get(b"dtype"))
        shape, data = obj.get(b"shape"), obj.get(b"data")
        if not isinstance(shape, list | tuple) or len(shape) > 32 or not all(
                isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape):
            raise WireError("array shape must be a list of non-negative integers")
        if not isinstance(data, bytes | bytearray):
            raise WireError("array data must be bytes")
        count = math.prod(shape)
        if count > MAX_ELEMENTS or count * dtype.itemsize != len(data):
            raise WireError(f"array of shape {tuple(shape)} and dtype {dtype} does not match "
                            f"its {len(data)} bytes")
        return np.frombuffer(data, dtype=dtype).reshape(shape)
    if _GENERIC in obj:
        dtype = _dtype(obj.get(b"dtype"))
        value = obj.get(b"data")
        if not isinstance(value, int | float | bool):
            raise WireError("scalar data must be a number")
        return dtype.type(value)
    return obj


_packer_options = {"default": _encode, "use_bin_type": True}


def pack(message: Any) -> bytes:
    """Encode a message (maps, lists, strings, numbers, numpy arrays)."""
    try:
        return msgpack.packb(message, **_packer_options)
    except WireError:
        raise
    except (TypeError, ValueError, OverflowError) as e:
        raise WireError(f"cannot encode the message: {e}") from None


def has_key(data: bytes | str, key: str) -> bool:
    """Whether ``data`` is a msgpack map with ``key`` at its top level, without decoding its
    values: the kind of request a malformed message meant to be, so that its error answer
    is the kind its client reads. Never raises."""
    if not isinstance(data, bytes | bytearray) or not data:
        return False
    try:
        unpacker = msgpack.Unpacker(raw=False, strict_map_key=False,
                                    max_buffer_size=len(data))
        unpacker.feed(data)
        for _ in range(unpacker.read_map_header()):
            if unpacker.unpack() == key:
                return True
            unpacker.skip()
    except Exception:  # noqa: BLE001 - garbage is simply not such a map
        return False
    return False


def unpack(data: bytes | str) -> Any:
    """Decode one message; any malformation is a ``WireError``, never a crash."""
    if isinstance(data, str):
        raise WireError("expected a binary msgpack message, got text")
    try:
        return msgpack.unpackb(data, object_hook=_decode, raw=False, strict_map_key=True)
    except WireError:
        raise
    except Exception as e:  # noqa: BLE001 - msgpack raises many kinds on garbage
        raise WireError(f"undecodable message ({type(e).__name__}: {e})") from None
