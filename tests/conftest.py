"""Test configuration: headless Qt and MuJoCo, shared scene fixtures."""

import contextlib
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("MUJOCO_GL", "egl")

import pytest  # noqa: E402

# First-party adapter plugins prepare their environment when imported (LeRobot's
# torchvision, which must be importable before transformers is: see
# plugins/vlascope-lerobot/vlascope_lerobot/compat.py). The app and the CLI import them
# while discovering plugins at start-up; the test session does the same here.
with contextlib.suppress(ImportError):
    import vlascope_lerobot  # noqa: F401, E402

from vlascope.scenes.tabletop import TabletopScene  # noqa: E402
from vlascope.scenes.tabletop.expert import TabletopExpert  # noqa: E402


@pytest.fixture(scope="session")
def scene():
    with TabletopScene() as s:
        yield s


@pytest.fixture(scope="session")
def expert():
    return TabletopExpert()


@pytest.fixture
def window(qtbot, tmp_path):
    """The inspector on the reference policy with no user plugins (test_app.py's own
    fixture adds failing ones)."""
    from test_app import make_window

    (tmp_path / "plugins").mkdir()
    w = make_window(qtbot, tmp_path, tmp_path / "plugins")
    yield w
    w.close()


@pytest.fixture(scope="session")
def recorded(scene, tmp_path_factory):
    """A short rollout of the shipped reference policy with activations captured at
    ``trunk.1.resid`` and ``tokens.language``: the run interventions are compared with, the
    source of injections and layer means, and what the shared SAE is trained on."""
    from vlascope.core.runner import rollout
    from vlascope.policies.reference.policy import ReferencePolicy

    path = tmp_path_factory.mktemp("reference") / "base.h5"
    rollout(scene, ReferencePolicy(name="reference"), "pick_red", 3, max_steps=10,
            record_to=path, capture=["trunk.1.resid", "tokens.language"])
    return path


@pytest.fixture(scope="session")
def sae_dir(recorded, tmp_path_factory):
    """A small SAE trained on ``recorded``'s ``trunk.1.resid`` (real training)."""
    from vlascope.core.capture import load_activations
    from vlascope.core.sae import SAEConfig, save_sae, train_sae

    acts = load_activations([recorded], "trunk.1.resid")
    sae, _ = train_sae(acts.x, SAEConfig(d_in=acts.x.shape[1], expansion=2, k=8,
                                         layer="trunk.1.resid"),
                       steps=150, batch_size=256, seed=0)
    return save_sae(sae, tmp_path_factory.mktemp("sae") / "trunk.1.resid")
