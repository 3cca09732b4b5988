"""A small deterministic fuzz pass over the toolkit importer: truncations, bit flips and
crafted arrays of the toolkit's own files (tests/data/toolkit/episode/). Each variant is
read, or refused with our error type naming the file; never another exception, never a
hang, never a change to the file read; and ``toolkit-import`` / ``nmr --masks`` leave the
episode as it was."""

import json
import time
from pathlib import Path

import numpy as np
import pytest
from cli_process import cli_process
from crafted_files import digest, fuzz
from test_toolkit_io import TOOLKIT_FILES, toolkit_episode

SEED = 2027
PER_CASE_S = 20
HEATMAPS = TOOLKIT_FILES / "iss" / "iss_heatmaps.npz"
MASK = TOOLKIT_FILES / "masks" / "mask_front_rgb.npy"
WRIST = TOOLKIT_FILES / "masks" / "mask_wrist_rgb.npy"
META = np.asarray(json.dumps({"n_masks": 64}))


def _npz(folder: Path, name: str, **arrays) -> Path:
    path = folder / name / "iss_heatmaps.npz"
    path.parent.mkdir()
    np.savez(path, **arrays)
    return path


def _beside_wrist(path: Path) -> Path:
    """The good wrist mask beside a front mask variant, so ``nmr --masks`` reads it."""
    (path.parent / "mask_wrist_rgb.npy").write_bytes(WRIST.read_bytes())
    return path


def _npy(folder: Path, name: str, array) -> Path:
    path = folder / name / "mask_front_rgb.npy"
    path.parent.mkdir()
    np.save(path, array)
    return _beside_wrist(path)


def _header_claiming(folder: Path, name: str, shape: tuple) -> Path:
    """A mask file whose .npy header claims ``shape`` over a few bytes of data."""
    path = folder / name / "mask_front_rgb.npy"
    path.parent.mkdir()
    header = f"{{'descr': '|u1', 'fortran_order': False, 'shape': {shape}, }}"
    header += " " * (63 - (10 + len(header)) % 64) + "\n"
    path.write_bytes(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little")
                     + header.encode() + b"\x00" * 16)
    return _beside_wrist(path)


def _wrist_if_mask(path: Path) -> Path:
    return _beside_wrist(path) if path.suffix == ".npy" else path


def _variants(folder: Path) -> dict[str, Path]:
    rng = np.random.default_rng(SEED)
    out: dict[str, Path] = {}
    for source in (HEATMAPS, MASK):
        data = source.read_bytes()
        for i, length in enumerate(sorted(rng.integers(0, len(data), 6))):
            p = folder / f"trunc-{source.stem}-{i}" / source.name
            p.parent.mkdir()
            p.write_bytes(data[:int(length)])
            out[f"{source.name} truncated to {length} bytes"] = _wrist_if_mask(p)
        for i in range(8):
            buf = bytearray(data)
            span = 256 if i % 2 == 0 else len(buf)  # headers, or anywhere
            for pos in rng.integers(0, span, int(rng.integers(1, 6))):
                buf[pos] ^= 1 << int(rng.integers(0, 8))
            p = folder / f"flip-{source.stem}-{i}" / source.name
            p.parent.mkdir()
            p.write_bytes(bytes(buf))
            out[f"{source.name} bit flips #{i}"] = _wrist_if_mask(p)
    maps = np.zeros((12, 32, 40), np.float32)
    out |= {
        "meta not JSON": _npz(folder, "c1", front=maps, meta_json=np.asarray("{oops")),
        "meta a list": _npz(folder, "c2", front=maps, meta_json=np.asarray("[1]")),
        "meta an array": _npz(folder, "c3", front=maps, meta_json=np.arange(3)),
        "maps of strings": _npz(folder, "c4", front=np.array(["a", "b"]), meta_json=META),
        "maps of objects": _npz(folder, "c5", front=np.array([None, 1], object),
                                meta_json=META),
        "maps of one frame size zero": _npz(folder, "c6", front=np.zeros((12, 0, 40),
                                                                         np.float32),
                                            meta_json=META),
        "infinite maps": _npz(folder, "c7", front=np.full((2, 4, 4), np.inf, np.float32),
                              meta_json=META),
        "views of different lengths": _npz(folder, "c8", front=maps, wrist=maps[:3],
                                           meta_json=META),
        "masks of objects": _npy(folder, "c9", np.array([[[None]]], object)),
        "masks of label 9": _npy(folder, "c10", np.full((2, 4, 4), 9, np.uint8)),
        "negative masks": _npy(folder, "c11", np.full((2, 4, 4), -1, np.int64)),
        "masks header claims 2^40 bytes": _header_claiming(folder, "c12", (1024, 1024, 2**20)),
    }
    return out


def test_fuzz_toolkit_reader(tmp_path):
    start = time.monotonic()
    cases = _variants(tmp_path)
    assert len(cases) == 40
    hashes = {name: digest(p) for name, p in cases.items()}
    outcomes = dict(zip(cases, fuzz("toolkit", list(cases.values()), PER_CASE_S),
                        strict=True))
    bugs = {n: o for n, o in outcomes.items() if not o.startswith(("ok", "refused"))}
    assert not bugs, bugs
    for name, outcome in outcomes.items():
        if outcome.startswith("refused"):
            assert str(cases[name].parent) in outcome, (name, outcome)  # names the file
        elif name.startswith(("meta", "maps", "infinite", "views", "masks", "negative")):
            pytest.fail(f"crafted '{name}' was accepted")
    assert sum(o.startswith("refused") for o in outcomes.values()) >= 24, outcomes
    assert {n: digest(p) for n, p in cases.items()} == hashes
    assert time.monotonic() - start < 60


@pytest.mark.parametrize("pick", [0, 9, 15, 20, 29, 39])
def test_fuzzed_files_on_the_command_line(tmp_path, pick):
    ep = Path(toolkit_episode(tmp_path))
    assert cli_process("toolkit-import", str(ep), str(TOOLKIT_FILES)).returncode == 0
    (tmp_path / "v").mkdir()
    name, path = list(_variants(tmp_path / "v").items())[pick]
    before = digest(ep)
    if path.suffix == ".npz":
        out = cli_process("toolkit-import", str(ep), str(path), "--name", "fuzzed", timeout=60)
    else:
        out = cli_process("nmr", str(ep), "--method", "toolkit", "--masks", str(path),
                          timeout=60)
    assert "Traceback" not in out.stderr, (name, out.stderr[-3000:])
    if out.returncode:
        assert out.stderr.startswith("vlascope: error:"), (name, out.stderr)
        assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    if out.returncode or path.suffix == ".npy":  # only a successful import changes it
        assert digest(ep) == before, name
