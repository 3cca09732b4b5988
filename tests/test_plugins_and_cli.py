"""Plugin discovery (entry points + user folder) and the CLI's commands and errors."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vlascope.core.errors import PluginError, UnknownNameError
from vlascope.core.plugins import PluginRegistry

GOOD = """
from vlascope.scenes.tabletop import TabletopScene

class SmallTabletop(TabletopScene):
    name = "small_tabletop"

class ConstantPolicy:
    policy_id = "constant"
    cameras = ("front",)
    n_action_steps = 2
    def batch_infer(self, observations):
        import numpy as np
        for o in observations:
            assert set(o.images) == {"front"}
        return np.zeros((len(observations), 2, 4), dtype=np.float32)

def broken_policy(**options):
    raise RuntimeError("weights file is missing")

SCENES = {"small_tabletop": SmallTabletop}
POLICIES = {"constant": ConstantPolicy, "broken": broken_policy}
"""
BAD = "raise ImportError('this plugin needs a library that is not installed')\n"


@pytest.fixture
def plugin_dir(tmp_path):
    (tmp_path / "good_plugin.py").write_text(GOOD)
    (tmp_path / "bad_plugin.py").write_text(BAD)
    pkg = tmp_path / "exits_on_import"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("import sys\nsys.exit(3)\n")
    return tmp_path


def run_cli(*args, plugin_dir=None, check=False):
    env = {**os.environ, "VLASCOPE_PLUGIN_PATH": str(plugin_dir or ""),
           "XDG_DATA_HOME": str(Path(plugin_dir or "/nonexistent") / "xdg")}
    return subprocess.run([sys.executable, "-m", "vlascope.cli", *args], capture_output=True,
                          text=True, env=env, timeout=300, check=check)


def test_registry_lists_builtins_and_folder_plugins(plugin_dir):
    reg = PluginRegistry.discover([plugin_dir])
    status = {(e.kind, e.name): e for e in reg.entries}
    assert status[("scene", "tabletop")].ok
    assert status[("policy", "expert")].ok
    assert status[("scene", "small_tabletop")].ok
    assert status[("policy", "constant")].ok
    assert "this plugin needs a library" in status[("unknown", "bad_plugin")].error
    assert "SystemExit" in status[("unknown", "exits_on_import")].error
    with pytest.raises(PluginError, match="weights file is missing"):
        reg.create_policy("broken")
    with pytest.raises(UnknownNameError, match="unknown policy 'nope'"):
        reg.create_policy("nope")
    # an option the factory does not take is named, not a TypeError from inside it
    with pytest.raises(PluginError, match="'expert' takes no weights option .*checkpoints"):
        reg.create_policy("expert", weights="/some/folder")
    scene = reg.create_scene("small_tabletop")
    with scene:
        assert scene.name == "small_tabletop"


def test_runner_hands_a_policy_only_its_cameras(plugin_dir, tmp_path):
    from vlascope.core.episode import Episode
    from vlascope.core.runner import rollout

    reg = PluginRegistry.discover([plugin_dir])
    with reg.create_scene("tabletop") as scene:
        out = tmp_path / "constant.h5"
        res = rollout(scene, reg.create_policy("constant"), "pick_red", 0, record_to=out,
                      max_steps=5)
    assert not res.success and res.steps == 5
    with Episode(out) as ep:  # recording keeps every camera even if the policy reads one
        assert ep.cameras == ["front", "wrist"]
        assert ep.metadata["policy"]["id"] == "constant"
        assert ep.chunk_indices().tolist() == [0, 1, 0, 1, 0]


def test_cli_plugins_reports_broken_plugin_and_survives(plugin_dir):
    out = run_cli("plugins", "--json", plugin_dir=plugin_dir, check=True)
    rows = {r["name"]: r for r in json.loads(out.stdout)}
    assert rows["bad_plugin"]["status"] == "error"
    assert rows["tabletop"]["status"] == "ok"
    text = run_cli("plugins", plugin_dir=plugin_dir, check=True).stdout
    assert "bad_plugin" in text and "ERROR" in text


def test_cli_scenes_json():
    scenes = json.loads(run_cli("scenes", "--json", check=True).stdout)
    tabletop = next(s for s in scenes if s["scene"] == "tabletop")
    assert len(tabletop["tasks"]) >= 6
    names = {v["name"] for v in tabletop["variants"]}
    assert {"default", "shortcut_train", "shortcut_test", "diverse"} <= names



def test_cli_output_into_a_closed_pipe_is_no_traceback():
    """`vlascope scenes --json | head -1`: the reader closes its end before the command has
    written; the command ends quietly with the status a shell gives a SIGPIPE death."""
    proc = subprocess.Popen([sys.executable, "-m", "vlascope.cli", "scenes", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "VLASCOPE_PLUGIN_PATH": ""})
    proc.stdout.close()  # long before the child has imported enough to print
    err = proc.stderr.read()
    assert proc.wait(timeout=300) == 141, err[-2000:]
    assert "Traceback" not in err and "BrokenPipe" not in err, err[-2000:]

def test_cli_record_and_info(tmp_path):
    out = run_cli("record", "--policy", "expert", "--task", "pick_red", "--episodes", "2",
                  "--seed", "4", "--out", str(tmp_path / "eps"), check=True)
    files = sorted((tmp_path / "eps").glob("*.h5"))
    assert [f.name for f in files] == ["expert__pick_red__default__seed4.h5",
                                       "expert__pick_red__default__seed5.h5"]
    assert out.stdout.count("success") == 2
    info = json.loads(run_cli("info", str(files[0]), "--json", check=True).stdout)
    assert info["metadata"]["seed"] == 4 and info["success"] and info["steps"] > 5


def test_cli_eval_small():
    out = run_cli("eval", "--policy", "expert", "--tasks", "pick_red,stack_blue_on_red",
                  "--variants", "default,new_textures", "--episodes", "2", "--json", check=True)
    report = json.loads(out.stdout)
    assert [(r["task"], r["variant"]) for r in report["results"]] == [
        ("pick_red", "default"), ("pick_red", "new_textures"),
        ("stack_blue_on_red", "default"), ("stack_blue_on_red", "new_textures")]
    assert all(r["episodes"] == 2 for r in report["results"])


@pytest.mark.parametrize("args,message", [
    (("record", "--task", "fly", "--out", "x.h5"), "unknown task 'fly'"),
    (("record", "--task", "pick_red", "--variant", "foggy", "--out", "x.h5"),
     "unknown variant 'foggy'"),
    (("eval", "--tasks", "pick_red", "--variants", "foggy", "--episodes", "1"),
     "unknown variant 'foggy'"),
    (("eval", "--policy", "bad_plugin", "--episodes", "1"), "unknown policy 'bad_plugin'"),
    (("eval", "--policy", "broken", "--episodes", "1"), "weights file is missing"),
    (("eval", "--compare", "reference", "--episodes", "1"), "compare with another policy"),
    (("eval", "--tasks", "pick_red,mt10", "--episodes", "1"), "unknown task 'mt10'"),
    (("nmr", "no-such-episode.h5", "--k", "1,10"), "no such episode file"),
])
def test_cli_bad_input_one_line_error(plugin_dir, tmp_path, args, message):
    out = run_cli(*args, plugin_dir=plugin_dir)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and lines[0].startswith("vlascope: error:")
    assert not list(tmp_path.glob("*.partial"))


@pytest.mark.parametrize("args", [("eval", "--episodes", "0"),
                                  ("train-reference", "--epochs", "0", "--out", "x")])
def test_cli_rejects_counts_below_one(args):
    out = run_cli(*args)
    assert out.returncode == 2 and "must be at least 1" in out.stderr


def test_cli_default_policy_is_the_shipped_reference(tmp_path):
    out = run_cli("record", "--task", "pick_blue", "--max-steps", "5", "--out",
                  str(tmp_path / "ref.h5"), check=True)
    assert "ref.h5" in out.stdout
    info = json.loads(run_cli("info", str(tmp_path / "ref.h5"), "--json", check=True).stdout)
    assert info["metadata"]["policy"]["id"] == "vlascope/reference"
    assert len(info["metadata"]["policy"]["weights_hash"]) == 64
    assert info["steps"] == 5


def test_cli_weights_folder_replaces_the_shipped_weights(tmp_path):
    """--weights: a checkpoint folder (as train-reference writes it) for the named policy."""
    import shutil

    from vlascope.policies.reference.policy import shipped_weights

    folder = shutil.copytree(shipped_weights("reference-shortcut"), tmp_path / "ckpt")
    run_cli("record", "--task", "pick_blue", "--max-steps", "2", "--weights", str(folder),
            "--out", str(tmp_path / "w.h5"), check=True)
    run_cli("record", "--task", "pick_blue", "--max-steps", "2", "--policy",
            "reference-shortcut", "--out", str(tmp_path / "s.h5"), check=True)
    hashes = [json.loads(run_cli("info", str(tmp_path / f), "--json", check=True).stdout)
              ["metadata"]["policy"]["weights_hash"] for f in ("w.h5", "s.h5")]
    assert hashes[0] == hashes[1]
    bad = run_cli("record", "--task", "pick_blue", "--weights", str(tmp_path / "nothing"),
                  "--out", str(tmp_path / "b.h5"))
    assert bad.returncode == 2 and "model.safetensors" in bad.stderr
    assert not (tmp_path / "b.h5").exists()


def test_cli_missing_device(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    out = run_cli("eval", "--device", "cuda", "--episodes", "1", "--tasks", "pick_red")
    assert out.returncode == 2 and "no CUDA GPU" in out.stderr


def test_cli_corrupt_episode(tmp_path):
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    out = run_cli("info", str(bad))
    assert out.returncode == 2
    assert out.stderr.strip().startswith("vlascope: error:") and "bad.h5" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_cli_demo_writes_episodes_and_preview(tmp_path):
    out = run_cli("demo", "--policy", "expert", "--out", str(tmp_path / "demo"), check=True)
    assert out.stdout.count("success") == 8
    assert (tmp_path / "demo" / "preview.png").stat().st_size > 10_000
    assert len(list((tmp_path / "demo").glob("*.h5"))) == 8


def test_benchmark_script_runs():
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, str(root / "benchmarks" / "scene_step.py"),
                          "--steps", "10", "--rounds", "1"],
                         capture_output=True, text=True, timeout=300, check=True)
    assert "steps/s" in out.stdout and "overhead vs floor" in out.stdout


def test_regions_toolkit_round_trip():
    import numpy as np

    from vlascope.core.regions import from_toolkit, to_toolkit

    ours = np.array([[1, 2], [3, 3]], dtype=np.uint8)
    np.testing.assert_array_equal(to_toolkit(ours), [[2, 1], [0, 0]])
    np.testing.assert_array_equal(from_toolkit(to_toolkit(ours)), ours)
    np.testing.assert_array_equal(to_toolkit(np.zeros((1, 1), np.uint8)), [[0]])
    with pytest.raises(ValueError):
        from_toolkit(np.array([3]))


