"""A small deterministic fuzz pass over the episode reader: truncations, bit flips and
crafted metadata of a real recorded episode. Each variant either reads, or is refused with
our error type naming the file; never another exception, never a hang, never a change to
the file read."""

import json
import time
from pathlib import Path

import numpy as np
import pytest
from crafted_files import cli, crafted, digest, fuzz, record_small

SEED = 2026
PER_CASE_S = 20


@pytest.fixture(scope="module")
def base(tmp_path_factory, scene, expert):
    return record_small(tmp_path_factory.mktemp("fuzz"), scene, expert, steps=3)


def _metadata_attr(value):
    def edit(h5):
        h5.attrs["metadata"] = value
    return edit


def _drop_attr(name):
    def edit(h5):
        del h5.attrs[name]
    return edit


CRAFTED = {
    "metadata null": _metadata_attr("null"),
    "metadata number": _metadata_attr("12"),
    "metadata not JSON": _metadata_attr("{'python': 'dict'}"),
    "metadata not UTF-8": _metadata_attr(np.bytes_(b'{"task": "caf\xe9"}')),
    "metadata deeply nested": _metadata_attr("[" * 100_000 + "]" * 100_000),
    "metadata policy a list": _metadata_attr(json.dumps({"policy": [1]})),
    "metadata segment names a list": _metadata_attr(json.dumps({"segment_names": [1]})),
    "metadata no attribute": _drop_attr("metadata"),
    "format attribute an array": lambda h5: h5.attrs.__setitem__("format", [1, 2]),
    "schema not a number": lambda h5: h5.attrs.__setitem__("schema", "one"),
}


def _variants(base: Path, folder: Path) -> dict[str, Path]:
    rng = np.random.default_rng(SEED)
    data = base.read_bytes()
    out: dict[str, Path] = {}
    for i, length in enumerate(sorted(rng.integers(0, len(data), 12))):
        p = folder / f"trunc{i}.h5"
        p.write_bytes(data[:int(length)])
        out[f"truncated to {length} bytes"] = p
    for i in range(18):
        buf = bytearray(data)
        # half the flips land in the first 8 KiB, where the superblock and headers are
        span = 8192 if i % 2 == 0 else len(buf)
        for pos in rng.integers(0, span, int(rng.integers(1, 9))):
            buf[pos] ^= 1 << int(rng.integers(0, 8))
        p = folder / f"flip{i}.h5"
        p.write_bytes(bytes(buf))
        out[f"bit flips #{i}"] = p
    for i, (name, edit) in enumerate(CRAFTED.items()):
        out[name] = crafted(base, folder / f"crafted{i}.h5", edit)
    return out


def test_fuzz_reader(base, tmp_path):
    start = time.monotonic()
    cases = _variants(base, tmp_path)
    assert len(cases) == 40
    hashes = {name: digest(p) for name, p in cases.items()}
    outcomes = dict(zip(cases, fuzz("episode", list(cases.values()), PER_CASE_S),
                        strict=True))
    bugs = {n: o for n, o in outcomes.items() if not o.startswith(("ok", "refused"))}
    assert not bugs, bugs
    for name, outcome in outcomes.items():
        if outcome.startswith("refused"):
            assert str(cases[name]) in outcome, (name, outcome)  # names the file
    assert sum(o.startswith("refused") for o in outcomes.values()) >= 20, outcomes
    for name in CRAFTED:
        assert outcomes[name].startswith("refused"), (name, outcomes[name])
    assert {n: digest(p) for n, p in cases.items()} == hashes
    assert time.monotonic() - start < 60


@pytest.mark.parametrize("pick", [0, 13, 14, 18, 33, 38])
@pytest.mark.parametrize("command", ["info", "nmr"])
def test_fuzzed_cli(base, tmp_path, pick, command):
    name, path = list(_variants(base, tmp_path).items())[pick]
    before = digest(path)
    args = [command, str(path)] + (["--method", "iss"] if command == "nmr" else [])
    out = cli(*args, timeout=60)
    assert "Traceback" not in out.stderr, (name, out.stderr[-3000:])
    if out.returncode:
        assert out.returncode == 2 and out.stderr.startswith("vlascope: error:"), (name,
                                                                                  out.stderr)
        assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert digest(path) == before
