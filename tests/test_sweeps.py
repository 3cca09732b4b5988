"""Issue 27: every batch command's cells on one executor, local workers or Ray; the same
seeds give the same table whatever runs them; finished cells written as they finish;
``--resume``; failed cells recorded; a killed worker node does not lose the sweep. The Ray
tests run on a real cluster on this machine (tests/ray_cluster.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vlascope.core.errors import VLAScopeError
from vlascope.core.sweep import CellRecord, RecordFolder, SweepCell, blocks

ray = pytest.importorskip("ray", reason="the Ray extra: bash scripts/setup.sh ray")

from ray_cluster import RayCluster  # noqa: E402

EVAL = ["eval", "--tasks", "pick_red,pick_blue", "--episodes", "4", "--seed", "3", "--json"]
REPORT = ["report", "--tasks", "pick_red", "--variants", "default,shortcut_test",
          "--episodes", "2", "--n", "8", "--every", "30", "--k", "10,50"]


def cli(*args: str, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    # One torch thread everywhere: bit-identical results need the same float reduction order.
    env = {**(env or os.environ), "VLASCOPE_PLUGIN_PATH": "", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "vlascope.cli", *args], capture_output=True,
                          text=True, env=env, timeout=timeout)


def ok(out: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert out.returncode == 0, out.stderr[-3000:]
    return out


def records(folder: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]


@pytest.fixture(scope="module")
def cluster():
    c = RayCluster().start()
    try:
        c.add_node()
        c.wait_nodes(2)
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
def local_eval():
    """The reference table: local workers, blocks of two seeds."""
    return json.loads(ok(cli(*EVAL, "--jobs", "2", "--seeds-per-cell", "2")).stdout)


# Engine ----------------------------------------------------------------------------------
def test_seed_blocks_cover_the_seeds_once():
    assert blocks(3, 5, 2) == [[3, 4], [5, 6], [7]]
    assert blocks(0, 2, 10) == [[0, 1]] and blocks(0, 3, 0) == [[0], [1], [2]]


def _double(x: int) -> dict:
    return {"y": 2 * x}


def test_resume_refuses_records_made_with_other_settings(tmp_path):
    folder = RecordFolder(tmp_path)
    old = SweepCell("a", _double, {"x": 1})
    folder.write(CellRecord("a", old.digest, "done", {"y": 2}))
    assert folder.finished([old])["a"].resumed
    with pytest.raises(VLAScopeError, match="other settings"):
        folder.finished([SweepCell("a", _double, {"x": 2})])
    folder.write(CellRecord("a", old.digest, "failed", error="boom"))
    assert folder.finished([old]) == {}  # a failed cell runs again
    (tmp_path / "a.json").write_text("{half")
    assert folder.finished([old]) == {}  # an unreadable record runs again


def _thread_vars() -> dict:
    return {v: os.environ.get(v) for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}


def test_local_workers_start_with_their_share_of_threads(monkeypatch):
    from vlascope.core.sweep import Executor, run_sweep

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setenv("MKL_NUM_THREADS", "1")  # a user's lower limit is kept
    cells = [SweepCell(str(i), _thread_vars, {}) for i in range(2)]
    outcome = run_sweep(cells, Executor("local", jobs=2))
    share = str(max(1, (os.cpu_count() or 1) // 2))
    for r in outcome.records:
        assert r.result == {"OMP_NUM_THREADS": share, "MKL_NUM_THREADS": "1"}
        assert r.pid != os.getpid()
    assert "OMP_NUM_THREADS" not in os.environ  # this process's own environment is restored


# On a real Ray cluster -------------------------------------------------------------------
@pytest.mark.slow
def test_eval_and_report_on_a_ray_cluster_equal_local_workers(cluster, local_eval, tmp_path):
    out = ok(cli(*EVAL, "--executor", "ray", "--ray-address", cluster.address,
                 "--seeds-per-cell", "1", "--cells", str(tmp_path / "cells"), env=cluster.env))
    got = json.loads(out.stdout)
    assert got["results"] == local_eval["results"]  # 4 blocks of 2 vs 8 cells of 1: same
    assert got["cells"]["total"] == 8 and not got["cells"]["failed"]
    assert f"8 cells on Ray at {cluster.address}" in got["cells"]["summary"]
    assert all(r["status"] == "done" for r in records(tmp_path / "cells"))

    local = ok(cli(*REPORT, "--out", str(tmp_path / "local"), "--jobs", "2"))
    on_ray = ok(cli(*REPORT, "--out", str(tmp_path / "ray"), "--executor", "ray",
                    "--ray-address", cluster.address, "--seeds-per-cell", "1",
                    env=cluster.env))
    a = json.loads((tmp_path / "local" / "report.json").read_text())
    b = json.loads((tmp_path / "ray" / "report.json").read_text())
    assert a["cells"] == b["cells"] and a["correlations"] == b["correlations"]
    assert len(list((tmp_path / "ray" / "episodes").rglob("*.h5"))) == 8
    assert "8 cells on Ray at" in on_ray.stdout and "ran 8 on node" in on_ray.stdout
    assert "4 cells on 2 local workers" in local.stdout


@pytest.mark.slow
def test_a_worker_node_killed_mid_sweep_loses_no_cell(cluster, local_eval, tmp_path):
    extra = cluster.add_node()
    cluster.wait_nodes(3)
    cells = tmp_path / "cells"
    args = [sys.executable, "-m", "vlascope.cli", *EVAL, "--executor", "ray",
            "--ray-address", cluster.address, "--seeds-per-cell", "1", "--cells", str(cells)]
    env = {**cluster.env, "VLASCOPE_PLUGIN_PATH": "", "OMP_NUM_THREADS": "1"}
    sweep = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=env)
    _wait_records(cells, 2, sweep)
    cluster.kill(extra)  # both nodes are busy: the killed one had a cell running
    stdout, stderr = sweep.communicate(timeout=600)
    assert sweep.returncode == 0 and stdout.strip(), (sweep.returncode, stderr[-3000:])
    got = json.loads(stdout)
    assert got["results"] == local_eval["results"] and not got["cells"]["failed"]
    assert len(records(cells)) == 8
    cluster.wait_nodes(2)


@pytest.mark.slow
def test_resume_after_an_interrupted_sweep_skips_finished_cells(cluster, local_eval,
                                                                tmp_path):
    cells = tmp_path / "cells"
    args = [*EVAL, "--executor", "ray", "--ray-address", cluster.address,
            "--seeds-per-cell", "1", "--cells", str(cells)]
    env = {**cluster.env, "VLASCOPE_PLUGIN_PATH": "", "OMP_NUM_THREADS": "1"}
    sweep = subprocess.Popen([sys.executable, "-m", "vlascope.cli", *args],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    _wait_records(cells, 3, sweep)
    sweep.kill()  # the driver crashes (SIGKILL: nothing of it runs after this)
    sweep.communicate(timeout=120)
    assert sweep.returncode == -signal.SIGKILL
    finished = {r["key"]: r for r in records(cells)}
    assert 3 <= len(finished) < 8
    out = ok(cli(*args, "--resume", env=cluster.env))
    got = json.loads(out.stdout)
    assert got["results"] == local_eval["results"]
    assert f"{len(finished)} reused from {cells}" in got["cells"]["summary"]
    after = {r["key"]: r for r in records(cells)}
    assert len(after) == 8
    for key, r in finished.items():  # the finished cells were not run again
        assert after[key]["pid"] == r["pid"] and after[key]["seconds"] == r["seconds"]


def _wait_records(folder: Path, n: int, proc: subprocess.Popen, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while len(list(folder.glob("*.json"))) < n:
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.monotonic() < deadline, f"fewer than {n} records in {folder}"
        time.sleep(0.1)


# Failures and clear errors ----------------------------------------------------------------
FLAKY = """
from vlascope.policies.reference.policy import ReferencePolicy


class FailsOnBlue(ReferencePolicy):
    def batch_infer(self, observations):
        if any("blue" in o.instruction for o in observations):
            raise RuntimeError("no blue for me")
        return super().batch_infer(observations)


POLICIES = {"fails_on_blue": FailsOnBlue}
"""


@pytest.mark.slow
def test_a_cell_whose_policy_raises_is_recorded_and_the_sweep_goes_on(tmp_path):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "flaky.py").write_text(FLAKY)
    env = {**os.environ, "VLASCOPE_PLUGIN_PATH": str(plugins), "OMP_NUM_THREADS": "1",
           "XDG_DATA_HOME": str(tmp_path / "xdg")}
    args = [sys.executable, "-m", "vlascope.cli", "eval", "--policy", "fails_on_blue",
            "--tasks", "pick_red,pick_blue", "--episodes", "2", "--jobs", "2",
            "--cells", str(tmp_path / "cells")]
    out = subprocess.run(args, capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 1, out.stderr[-3000:]
    assert "pick_red" in out.stdout and "2/2" in out.stdout  # the table of what ran
    assert "1 failed" in out.stdout
    failed = [r for r in records(tmp_path / "cells") if r["status"] == "failed"]
    assert [r["key"] for r in failed] == ["fails_on_blue__pick_blue__default__seeds0-1"]
    assert "no blue for me" in failed[0]["error"]
    assert "cell fails_on_blue__pick_blue__default__seeds0-1 failed" in out.stderr
    again = subprocess.run([*args, "--resume"], capture_output=True, text=True, env=env,
                           timeout=600)
    assert again.returncode == 1 and "1 reused" in again.stdout  # only the failed cell ran


def test_ray_missing_or_unreachable_is_one_clear_line(tmp_path):
    out = cli("eval", "--tasks", "pick_red", "--episodes", "1", "--executor", "ray",
              "--ray-address", "127.0.0.1:9")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "no Ray cluster reachable at 127.0.0.1:9" in out.stderr
    code = ("import sys; sys.modules['ray'] = None\nfrom vlascope.cli import main\n"
            "sys.exit(main(['eval', '--tasks', 'pick_red', '--episodes', '1', "
            "'--executor', 'ray']))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300, env={**os.environ, "VLASCOPE_PLUGIN_PATH": ""})
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines()[-1].endswith(
        "pip install 'vlascope[ray]' (or: bash scripts/setup.sh ray)")


@pytest.mark.slow
def test_a_served_policy_is_the_workers_policy_on_a_local_ray(local_eval, monkeypatch):
    from served import served

    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the server's threads, as the workers'
    with served() as server:
        out = ok(cli(*EVAL, "--policy", "remote", "--policy-option", f"url={server.url}",
                     "--executor", "ray", "--seeds-per-cell", "4"))
    got = json.loads(out.stdout)
    assert got["results"] == local_eval["results"]
    assert "2 cells on a local Ray" in got["cells"]["summary"]
