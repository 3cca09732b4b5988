"""End to end through the CLI: capture -> sae train -> sae stats -> steer / ablate / inject /
probe / perturb on the shipped reference policy, as a user reproducing a table would run it.
Sizes are tiny (one episode per task, a short SAE run); the point is that every command
runs on real files and writes what the next one and the GUI read."""

import json
import os
import subprocess
import sys

import pytest
import torch
from test_plugins_and_cli import run_cli

from vlascope.core.episode import Episode
from vlascope.core.sae import load_sae

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """Captured episodes and an SAE trained and described on them."""
    root = tmp_path_factory.mktemp("mech")
    run_cli("capture", "--tasks", "pick_red,pick_blue", "--episodes", "1", "--layers",
            "trunk.1.resid", "--out", str(root / "cap"), check=True)
    run_cli("sae", "train", "--episodes", str(root / "cap"), "--layers", "trunk.1.resid",
            "--steps", "60", "--batch-size", "512", "--max-vectors", "6000", "--out",
            str(root / "sae"), check=True)
    out = run_cli("sae", "stats", "--sae", str(root / "sae" / "trunk.1.resid"), "--episodes",
                  str(root / "cap"), "--positions", "language", "--aggregate", "steps",
                  "--concepts", "3",
                  check=True)
    return root, out.stdout


def test_capture_and_sae_files(work):
    root, stats_out = work
    summary = json.loads((root / "cap" / "capture.json").read_text())
    assert [e["task"] for e in summary["episodes"]] == ["pick_red", "pick_blue"]
    for e in summary["episodes"]:
        with Episode(e["path"]) as ep:
            assert ep.metadata["capture"]["layers"] == ["trunk.1.resid"]
            assert ep.metadata["target_object"] in ("cube_a", "cube_b")
    sae = load_sae(root / "sae" / "trunk.1.resid")
    assert (sae.cfg.layer, sae.cfg.pooling) == ("trunk.1.resid", "tokens")
    trained = json.loads((root / "sae" / "sae_train.json").read_text())["saes"]
    assert 0 < trained["trunk.1.resid"]["fve"] <= 1
    stats = json.loads((root / "sae" / "trunk.1.resid" / "sae_stats.json").read_text())
    assert stats["positions"] == "language"
    # 12 language tokens per step were read, their mean code makes one sample per step
    steps = sum(e["steps"] for e in summary["episodes"])
    assert stats["vectors"] == 12 * steps and stats["samples"] == steps
    assert set(stats["concepts"]["object"]) == {"cube_a", "cube_b"}
    assert stats["atlas"] == {s: {"method": "pca", "points": sae.cfg.d_sae}
                              for s in ("decoder", "stats")}
    assert "object cube_b" in stats_out


def test_steer_sweep_table(work, tmp_path):
    root, _ = work
    out = run_cli("steer", "--sae", str(root / "sae" / "trunk.1.resid"), "--feature", "0",
                  "--alphas", "0,8", "--tasks", "pick_red", "--episodes", "1", "--positions",
                  "language", "--out", str(tmp_path / "steer"), check=True)
    rows = json.loads((tmp_path / "steer" / "steer.json").read_text())["rows"]
    assert [r["extra"]["alpha"] for r in rows] == [0.0, 8.0]
    assert all(r["episodes"] == 1 for r in rows)
    assert "| pick_red | 8 |" in out.stdout
    # each rollout is an episode the inspector opens, with the steer it ran under
    with Episode(tmp_path / "steer" / "pick_red__alpha8__seed0.h5") as ep:
        (iv,) = ep.metadata["interventions"]
        assert (iv["kind"], iv["feature"], iv["alpha"]) == ("steer", 0, 8.0)
        assert iv["positions"] == list(range(12))
    with Episode(tmp_path / "steer" / "pick_red__alpha0__seed0.h5") as ep:
        assert ep.metadata["interventions"] == []
    bad = run_cli("steer", "--sae", str(root / "sae" / "trunk.1.resid"), "--feature", "0",
                  "--alphas", "1,nan", "--out", str(tmp_path / "bad"))
    assert bad.returncode == 2 and "finite" in bad.stderr
    assert not (tmp_path / "bad").exists()


def test_inject_table_and_episodes(work, tmp_path):
    out = run_cli("inject", "--tasks", "pick_red", "--episodes", "1", "--conditions",
                  "cross_task,prompt_null", "--out", str(tmp_path / "inj"), check=True)
    result = json.loads((tmp_path / "inj" / "inject.json").read_text())
    rows = {r["condition"]: r for r in result["rows"]}
    assert set(rows) == {"baseline", "cross_task", "prompt_null"}
    assert rows["baseline"]["displacement"] == pytest.approx(0.0, abs=1e-9)
    assert rows["baseline"]["cosine"] == pytest.approx(1.0)
    assert rows["cross_task"]["extra"]["source"] == "pick_blue"
    # the injected episode opens and says what was applied to it
    with Episode(tmp_path / "inj" / "pick_red__from_pick_blue__seed0__cross_task.h5") as ep:
        (iv,) = ep.metadata["interventions"]
        assert iv["kind"] == "inject" and iv["source"].endswith("pick_blue__seed0__source.h5")
    assert "cross_task" in out.stdout


def test_ablate_probe_perturb(work, tmp_path):
    root, _ = work
    sae_dir = str(root / "sae" / "trunk.1.resid")
    run_cli("ablate", "--sae", sae_dir, "--episodes", str(root / "cap"), "--frames", "6",
            "--json-out", str(tmp_path / "ablate.json"), check=True)
    ablate = json.loads((tmp_path / "ablate.json").read_text())
    assert ablate["frames"] == 6 and len(ablate["max_action_change"]) == len(ablate["features"])
    rates = ablate["zero_effect_rate"]
    assert rates["0.001"] <= rates["0.01"] <= rates["0.05"]

    run_cli("probe", "--episodes", str(root / "cap"), "--layers", "trunk.1.resid",
            "--targets", "phase", "--json-out", str(tmp_path / "probe.json"), check=True)
    (row,) = json.loads((tmp_path / "probe.json").read_text())["rows"]
    assert row["layer"] == "trunk.1.resid" and 0 <= row["accuracy"] <= 1

    run_cli("perturb", "--kinds", "gaussian_noise", "--episodes", "1", "--out",
            str(tmp_path / "pert"), check=True)
    rows = json.loads((tmp_path / "pert" / "perturb.json").read_text())["rows"]
    assert [r["condition"] for r in rows] == ["none", "gaussian_noise"]
    assert sorted(p.name for p in (tmp_path / "pert").glob("*.h5")) == [
        "pick_red__gaussian_noise__seed0.h5", "pick_red__none__seed0.h5"]


# The same seeds give the same table however the work is cut into cells and run: one block
# per row in this process, or a cell per seed (per few features) in two spawned workers.
ONE_BLOCK = ("--jobs", "1", "--seeds-per-cell", "2")
TWO_WORKERS = ("--jobs", "2", "--seeds-per-cell", "1")


def run_sweep(*args):
    """The command in a fresh process with one torch thread (the spawned workers get one
    each on two cores; bit-identical floats need the same reduction order)."""
    env = {**os.environ, "VLASCOPE_PLUGIN_PATH": "", "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-m", "vlascope.cli", *args], capture_output=True,
                         text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def _rows(path, key="rows"):
    return json.loads(path.read_text())[key]


@pytest.fixture(scope="module")
def twin_captures(tmp_path_factory):
    """Two layers captured on two seeds, once in one cell, once in two workers."""
    root = tmp_path_factory.mktemp("twin")
    outs = []
    for name, how in (("a", ONE_BLOCK), ("b", TWO_WORKERS)):
        outs.append(run_sweep("capture", "--tasks", "pick_red", "--episodes", "2", "--layers",
                              "trunk.0.resid,trunk.1.resid", "--out", str(root / name), *how))
    return root, outs


def test_capture_cells_give_the_same_episodes(twin_captures):
    root, (_, out_b) = twin_captures
    a, b = _rows(root / "a" / "capture.json", "episodes"), _rows(root / "b" / "capture.json",
                                                                  "episodes")
    assert [r["seed"] for r in a] == [0, 1]
    assert [{**r, "path": None} for r in a] == [{**r, "path": None} for r in b]
    assert [r["path"].replace("/b/", "/a/") for r in b] == [r["path"] for r in a]
    assert "2 cells on 2 local workers" in out_b
    assert sorted(p.name for p in (root / "b" / "cells").glob("*.json")) == [
        "pick_red__seeds0-0.json", "pick_red__seeds1-1.json"]


def test_sae_train_cell_per_layer_same_saes(twin_captures, tmp_path):
    root, _ = twin_captures
    args = ("sae", "train", "--episodes", str(root / "a"), "--layers",
            "trunk.0.resid,trunk.1.resid", "--steps", "40", "--batch-size", "512",
            "--max-vectors", "3000")
    run_sweep(*args, "--out", str(tmp_path / "a"), "--jobs", "1")
    out = run_sweep(*args, "--out", str(tmp_path / "b"), "--jobs", "2")
    assert "2 cells on 2 local workers" in out
    a, b = (_rows(tmp_path / n / "sae_train.json", "saes") for n in "ab")
    assert list(a) == list(b) == ["trunk.0.resid", "trunk.1.resid"]
    timing = ("folder", "seconds", "samples_per_s")
    for layer in a:
        assert ({k: v for k, v in a[layer].items() if k not in timing}
                == {k: v for k, v in b[layer].items() if k not in timing})
        sa, sb = (load_sae(tmp_path / n / layer) for n in "ab")
        assert all(torch.equal(x, y) for x, y in zip(sa.state_dict().values(),
                                                    sb.state_dict().values(), strict=True))


def test_steer_cells_give_the_same_rows(work, tmp_path):
    root, _ = work
    args = ("steer", "--sae", str(root / "sae" / "trunk.1.resid"), "--feature", "0",
            "--alphas", "0,8", "--tasks", "pick_red", "--episodes", "2", "--positions",
            "language")
    run_sweep(*args, "--out", str(tmp_path / "a"), *ONE_BLOCK)
    run_sweep(*args, "--out", str(tmp_path / "b"), *TWO_WORKERS)
    a, b = _rows(tmp_path / "a" / "steer.json"), _rows(tmp_path / "b" / "steer.json")
    assert a == b and [(r["extra"]["alpha"], r["episodes"]) for r in a] == [(0.0, 2), (8.0, 2)]
    assert sum(a[0]["extra"]["handled"].values()) == 2


def test_inject_cells_give_the_same_rows(tmp_path):
    args = ("inject", "--tasks", "pick_red", "--episodes", "2", "--conditions", "cross_task")
    run_sweep(*args, "--out", str(tmp_path / "a"), *ONE_BLOCK)
    run_sweep(*args, "--out", str(tmp_path / "b"), *TWO_WORKERS)
    a, b = _rows(tmp_path / "a" / "inject.json"), _rows(tmp_path / "b" / "inject.json")
    assert a == b and [(r["condition"], r["episodes"]) for r in a] == [("baseline", 2),
                                                                       ("cross_task", 2)]
    names = sorted(p.name for p in (tmp_path / "b").glob("*.h5"))
    assert names == sorted(p.name for p in (tmp_path / "a").glob("*.h5"))
    assert "pick_blue__seed1__source.h5" in names


def test_perturb_cells_give_the_same_rows(tmp_path):
    args = ("perturb", "--kinds", "gaussian_noise", "--episodes", "2")
    run_sweep(*args, "--out", str(tmp_path / "a"), *ONE_BLOCK)
    run_sweep(*args, "--out", str(tmp_path / "b"), *TWO_WORKERS)
    a, b = _rows(tmp_path / "a" / "perturb.json"), _rows(tmp_path / "b" / "perturb.json")
    assert a == b and [(r["condition"], r["episodes"]) for r in a] == [("none", 2),
                                                                       ("gaussian_noise", 2)]


def test_ablate_feature_blocks_give_the_same_effects(work, tmp_path):
    root, _ = work
    args = ("ablate", "--sae", str(root / "sae" / "trunk.1.resid"), "--episodes",
            str(root / "cap"), "--frames", "6", "--features", "0,1,2,3,4")
    run_sweep(*args, "--json-out", str(tmp_path / "a.json"), "--jobs", "1")
    out = run_sweep(*args, "--json-out", str(tmp_path / "b.json"), "--jobs", "2",
                    "--features-per-cell", "2")
    a, b = (json.loads((tmp_path / f"{n}.json").read_text()) for n in "ab")
    assert a["features"] == b["features"] == [0, 1, 2, 3, 4] and a["frames"] == b["frames"] == 6
    assert a["max_action_change"] == b["max_action_change"]
    assert "3 cells on 2 local workers" in out
    assert len(list((tmp_path / "b-cells").glob("*.json"))) == 3  # beside --json-out
