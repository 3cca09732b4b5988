"""The wheel works anywhere: built by packaging/build_wheels.sh, installed with its
dependencies into a fresh virtualenv outside the checkout, and run from a folder with no
checkout around, with nothing of this environment (``env -i``-like), offline for the app.
The shipped reference models come from the wheel itself (package data)."""

import hashlib
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vlascope.policies.reference.policy import SHIPPED, shipped_weights

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def wheels(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("dist")
    paths = subprocess.run(["bash", str(REPO / "packaging" / "build_wheels.sh"), str(out)],
                           capture_output=True, text=True, check=True).stdout.split()
    return {Path(p).name.split("-")[0]: Path(p) for p in paths}


@pytest.fixture(scope="module")
def installed(wheels, tmp_path_factory):
    """A fresh virtualenv with the wheel and its dependencies (torch by the same rule as
    setup.sh: the CPU build on a machine without a GPU), removed afterwards (2.6 GB)."""
    root = tmp_path_factory.mktemp("fresh")
    venv = root / "venv"
    subprocess.run([sys._base_executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(["bash", str(REPO / "scripts" / "install_torch.sh"), str(python)],
                   check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                    str(wheels["vlascope"])], check=True, capture_output=True)
    # the MetaWorld plugin's reference model needs only VLAScope (MetaWorld itself is not
    # installed here: its scene is not what this checks)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps",
                    "--disable-pip-version-check", str(wheels["vlascope_metaworld"])],
                   check=True, capture_output=True)
    home = root / "home"
    home.mkdir()
    yield venv, home
    shutil.rmtree(venv, ignore_errors=True)


def run_installed(installed, *args: str, timeout: int = 600) -> str:
    venv, home = installed
    env = {"HOME": str(home), "PATH": f"{venv / 'bin'}:/usr/bin:/bin", "LANG": "C.UTF-8",
           "QT_QPA_PLATFORM": "offscreen", "MUJOCO_GL": "egl",
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.run(list(args), cwd=home, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return proc.stdout


def test_the_wheels_carry_the_shipped_models_and_nothing_of_the_checkout(wheels):
    with zipfile.ZipFile(wheels["vlascope"]) as whl:
        names = set(whl.namelist())
        for name in SHIPPED:
            for f in ("config.json", "model.safetensors", "model_card.md"):
                member = f"vlascope/policies/reference/weights/{name}/{f}"
                assert member in names
                assert whl.read(member) == (shipped_weights(name) / f).read_bytes()
        assert "vlascope/scenes/tabletop/assets/variants.json" in names
        assert "vlascope/icons/vlascope.svg" in names
        assert not any(n.startswith(("tests/", "docs/", "plugins/", "resources/"))
                       for n in names)
    with zipfile.ZipFile(wheels["vlascope_metaworld"]) as whl:
        assert "vlascope_metaworld/weights/reference-metaworld/model.safetensors" in \
            whl.namelist()
    assert {"vlascope_libero", "vlascope_transformers", "vlascope_lerobot"} <= set(wheels)


def test_installed_vlascope_runs_from_its_wheel_alone(installed):
    venv, _ = installed
    where = json.loads(run_installed(installed, "python", "-c", (
        "import json, vlascope\n"
        "from vlascope.core.environments import checkout\n"
        "from vlascope.policies.reference.policy import ReferencePolicy\n"
        "from vlascope_metaworld.reference import make_reference_metaworld\n"
        "print(json.dumps({'file': vlascope.__file__, 'checkout': str(checkout()),\n"
        "  'reference': ReferencePolicy().weights_hash,\n"
        "  'metaworld': make_reference_metaworld().weights_hash}))")))
    assert where["file"].startswith(str(venv)) and where["checkout"] == "None"
    assert where["reference"] == sha256(shipped_weights("reference") / "model.safetensors")
    assert where["metaworld"] == sha256(
        shipped_weights("reference-metaworld", "vlascope_metaworld") / "model.safetensors")


def test_installed_vlascope_evaluates_explains_and_renders_the_window(installed):
    _, home = installed
    table = json.loads(run_installed(installed, "vlascope", "eval", "--episodes", "1",
                                     "--json"))
    assert table["policy"] == "reference" and len(table["results"]) >= 3
    assert all(r["episodes"] == 1 for r in table["results"])
    assert sum(r["successes"] for r in table["results"]) >= 1  # the trained model acts

    run_installed(installed, "vlascope", "record", "--task", "pick_red", "--episodes", "1",
                  "--max-steps", "4", "--out", "ep.h5")
    iss = json.loads(run_installed(installed, "vlascope", "iss", "ep.h5", "--every", "10",
                                   "--json"))
    assert iss["computed_steps"] == [0, 3]
    nmr = json.loads(run_installed(installed, "vlascope", "nmr", "ep.h5", "--json"))
    assert 0.0 <= nmr[0]["nmr"]["10.0"] <= 1.0 and len(nmr[0]["per_step"]["10.0"]) == 4

    run_installed(installed, "vlascope", "screenshot", "--steps", "3", "--out", "shot.png")
    shot = np.asarray(Image.open(home / "shot.png").convert("RGB"))
    assert shot.shape[0] > 400 and shot.shape[1] > 600
    assert shot.std() > 20  # a real window, not a blank image


def test_doctor_in_the_installed_wheel_reports_its_plugins(installed):
    """The plugin wheel installed beside it is found through its entry points, its model
    through its own package data; rendering works from the fresh environment."""
    venv, home = installed
    proc = subprocess.run(["vlascope", "doctor", "--json"], cwd=home, capture_output=True,
                          text=True, env={"HOME": str(home), "PATH": f"{venv / 'bin'}:/bin",
                                          "QT_QPA_PLATFORM": "offscreen", "MUJOCO_GL": "egl"})
    assert proc.returncode in (0, 1) and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    checks = {c["name"]: c for c in json.loads(proc.stdout)}
    assert checks["rendering"]["status"] == "ok"
    for policy in ("reference", "reference-shortcut", "reference-metaworld"):
        assert checks[f"plugin policy {policy}"]["status"] == "ok"
    assert "vlascope_metaworld" in checks["plugin scene metaworld"]["detail"]
