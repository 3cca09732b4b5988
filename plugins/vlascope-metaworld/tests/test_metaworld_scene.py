"""The MetaWorld scene plugin on MetaWorld itself: task lists and groups, seeded resets,
stepping, upright rendering, region maps from the segmentation, MetaWorld's scripted experts
through our runner, recording through the CLI, and the inspector on a MetaWorld task."""

import json
import os

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from cli_process import run_cli  # noqa: E402
from vlascope_metaworld.scene import ALL_CAMERAS, MetaWorldScene  # noqa: E402
from vlascope_metaworld.tasks import MT10, MT50  # noqa: E402

from vlascope.core.errors import ObservationError, UnknownNameError, VLAScopeError  # noqa: E402
from vlascope.core.plugins import PluginRegistry  # noqa: E402
from vlascope.core.regions import ACTION_CRITICAL, NUISANCE, SUPPORT  # noqa: E402
from vlascope.core.runner import rollout  # noqa: E402
from vlascope.policies.reference.policy import shipped_weights  # noqa: E402

SIZE = (96, 96)


@pytest.fixture(scope="module")
def scene():
    s = MetaWorldScene(image_size=SIZE)
    yield s
    s.close()


@pytest.fixture(scope="module")
def expert():
    return PluginRegistry.discover([]).create_policy("metaworld-expert")


def test_the_plugins_are_found_through_their_entry_points():
    reg = PluginRegistry.discover([])
    assert reg.get("scene", "metaworld").ok
    for name in ("metaworld-expert", "reference-metaworld"):
        assert reg.get("policy", name).ok
    assert reg.get("scene", "metaworld").factory().expert_policy == "metaworld-expert"


def test_mt1_mt10_mt50_task_lists_with_instructions(scene):
    tasks = scene.tasks()
    assert [t.name for t in tasks] == list(MT50) and len(tasks) == 50
    assert len({t.instruction for t in tasks}) == 50  # one distinct instruction per task
    assert all(t.instruction and t.max_steps >= 250 for t in tasks)
    assert scene.resolve_tasks("mt10") == list(MT10)
    assert scene.resolve_tasks("mt50") == list(MT50) == scene.resolve_tasks("all")
    assert scene.resolve_tasks("push-v3,mt10")[:2] == ["push-v3", "reach-v3"]  # MT1 + group
    assert len(scene.resolve_tasks("push-v3,mt10")) == 10
    with pytest.raises(UnknownNameError, match="mt11"):
        scene.resolve_tasks("mt11")


@pytest.mark.parametrize("task", MT10)
def test_each_mt10_task_resets_steps_renders_upright_with_regions(scene, task):
    scene.reset(task, 7)
    start = scene.state()
    assert start.shape == (4,) and np.isfinite(start).all()
    assert scene.instruction() == scene.task(task).instruction
    for _ in range(10):
        scene.step(np.array([1.0, 0.0, 0.0, 1.0]))
    moved = scene.state()
    assert moved[0] > start[0] + 0.02  # +x as documented
    assert moved[3] < start[3]  # and the gripper closes
    assert not scene.success()
    frame = scene.observe(regions=True)
    for cam in scene.cameras:
        img = frame.observation.images[cam]
        assert img.shape == (*SIZE, 3) and img.dtype == np.uint8 and img.std() > 10
        assert frame.regions[cam].shape == frame.segments[cam].shape == SIZE
    labels, segs = frame.regions["corner2"], frame.segments["corner2"]
    counts = np.bincount(labels.ravel(), minlength=4)
    assert counts[ACTION_CRITICAL] > 100 and counts[SUPPORT] > 500 and counts[NUISANCE] > 50
    # The right way up: the table lies below the arm's top and fills the lower half.
    rows = np.arange(SIZE[0])[:, None].repeat(SIZE[1], 1)
    table = np.isin(segs, [i for i, n in scene.segment_names().items() if n == "tablelink"])
    assert table.sum() > 500 and rows[table].mean() > SIZE[0] / 2
    assert rows[labels == ACTION_CRITICAL].min() < rows[table].min()
    assert (labels[table] == SUPPORT).all()
    goal = [i for i, n in scene.segment_names().items() if n == "goal"]
    assert (labels[np.isin(segs, goal)] == SUPPORT).all()
    assert frame.observation.extras["privileged"]["task"] == task


def test_the_seed_decides_the_layout(scene):
    positions = []
    for seed in (3, 3, 4):
        scene.reset("pick-place-v3", seed)
        positions.append(np.r_[scene.object_positions()["object"],
                               scene.object_positions()["goal"]])
        image = scene.observe(cameras=("corner2",)).observation.images["corner2"]
        positions[-1] = (positions[-1], image)
    (a, img_a), (b, img_b), (c, _) = positions
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(img_a, img_b)
    assert np.abs(a - c).max() > 0.01


def test_every_camera_renders(scene):
    wide = MetaWorldScene(image_size=(64, 64), cameras=ALL_CAMERAS)
    try:
        wide.reset("door-open-v3", 0)
        frame = wide.observe(regions=True)
        for cam in ALL_CAMERAS:
            assert frame.observation.images[cam].std() > 5, cam
            assert (frame.regions[cam] == ACTION_CRITICAL).any() or cam == "topview", cam
    finally:
        wide.close()


@pytest.mark.parametrize("task", MT10)
def test_the_scripted_expert_succeeds_on_a_seeded_episode(scene, expert, task):
    result = rollout(scene, expert, task, seed=3)
    assert result.success, f"{task}: expert failed after {result.steps} steps"
    assert result.steps < scene.task(task).max_steps


def test_bad_input_gets_clear_errors(scene, expert):
    fresh = MetaWorldScene()
    with pytest.raises(VLAScopeError, match="before reset"):
        fresh.step(np.zeros(4))
    with pytest.raises(UnknownNameError, match="camera"):
        MetaWorldScene(cameras=("nosuchcam",))
    with pytest.raises(UnknownNameError):
        scene.reset("reach-v2", 0)  # only v3 environments exist in MetaWorld 3
    scene.reset("reach-v3", 0)
    with pytest.raises(ObservationError, match="4 finite numbers"):
        scene.step(np.zeros(7))
    with pytest.raises(ObservationError, match="outside"):
        scene.observe(size=(4, 4))
    with pytest.raises(UnknownNameError, match="camera"):
        scene.observe(cameras=("agentview",))
    from vlascope.scenes.tabletop import TabletopScene

    with TabletopScene() as table:
        table.reset("pick_red", 0)
        obs = table.observe(cameras=()).observation
    with pytest.raises(ObservationError, match="metaworld scene"):
        expert.batch_infer([obs])


@pytest.mark.slow
def test_record_the_expert_then_eval_beside_it_through_the_cli(tmp_path):
    from vlascope.core.recording import FileRecording

    ep = tmp_path / "push.h5"
    run_cli("record", "--scene", "metaworld", "--task", "push-v3", "--policy",
            "metaworld-expert", "--seed", "2", "--size", "64", "--out", str(ep))
    rec = FileRecording(ep)  # what the app opens
    try:
        assert rec.cameras == ["corner2", "gripperPOV"] and rec.episode.success
        assert rec.regions(0) is not None and rec.segments(0) is not None
        assert "tablelink" in rec.segment_names().values()
        assert rec.episode.metadata["scene"] == "metaworld"
    finally:
        rec.close()
    doc = tmp_path / "card.md"
    doc.write_text("# Card\n")
    report = json.loads(run_cli("eval", "--scene", "metaworld", "--tasks", "reach-v3,push-v3",
                                "--policy", "reference-metaworld", "--compare",
                                "metaworld-expert", "--episodes", "1", "--seed", "1000",
                                "--doc", str(doc), "--json"))
    assert [r["task"] for r in report["results"]] == ["reach-v3", "push-v3"]
    assert report["policy"] == "reference-metaworld"
    assert report["compare"]["policy"] == "metaworld-expert"
    assert report["compare"]["mean_success_rate"] == 1.0  # seed 1000: the expert succeeds
    text = doc.read_text()
    assert text.startswith("# Card\n") and "| task | `reference-metaworld` | " \
        "`metaworld-expert` |" in text
    assert "| reach-v3 | " in text and "--compare metaworld-expert" in text
    one, two = (json.loads(run_cli("eval", "--scene", "metaworld", "--tasks", "push-v3,mt10",
                                   "--policy", "metaworld-expert", "--episodes", "1",
                                   "--jobs", jobs, "--json")) for jobs in ("1", "2"))
    assert one["results"] == two["results"]  # one task per worker: the same cells, in order
    assert [r["task"] for r in two["results"]][:2] == ["push-v3", "reach-v3"]


@pytest.mark.slow
def test_the_shipped_metaworld_reference_acts_in_the_scene(scene):
    reg = PluginRegistry.discover([])
    policy = reg.create_policy("reference-metaworld")
    assert (shipped_weights("reference-metaworld", "vlascope_metaworld")
            / "model.safetensors").is_file()  # package data of the plugin
    assert policy.cameras == ("corner2", "gripperPOV")
    result = rollout(scene, policy, "drawer-close-v3", seed=1000, max_steps=20)
    assert result.steps == 20 or result.success


@pytest.mark.slow
def test_the_inspector_runs_metaworld_live_with_saliency_painting_and_recording(qtbot,
                                                                                 tmp_path):
    from PySide6.QtCore import QSettings, Qt
    from qt_events import drag

    from vlascope.app.main_window import MainWindow

    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    window = MainWindow(registry=PluginRegistry.discover([]), settings=settings,
                        record_dir=tmp_path / "recordings")
    qtbot.addWidget(window)
    ws = window.workspace
    ws.update_run(policy="reference-metaworld", scene="metaworld", task="drawer-close-v3")
    ws.update_saliency(n_masks=16)
    window.resize(1400, 900)
    window.show()
    window.start()
    qtbot.waitUntil(lambda: ws.recording is not None and not window.engine.busy(),
                    timeout=300_000)
    assert ws.recording.cameras == ["corner2", "gripperPOV"]
    assert window.scene_dock.task_box.currentText() == "drawer-close-v3"
    window.controller.play()
    qtbot.waitUntil(lambda: ws.n_steps >= 4, timeout=300_000)
    window.controller.pause()
    qtbot.waitUntil(lambda: not window.engine.busy(), timeout=300_000)
    view = window.scene_dock.views["corner2"]
    assert view.frame.image is not None and view.frame.image.std() > 10
    window.controller.explain()
    qtbot.waitUntil(lambda: ws.maps_at() is not None, timeout=300_000)
    assert set(ws.maps_at()) == {"corner2", "gripperPOV"}
    regions = window.regions_dock
    regions.raise_()
    regions.camera_box.setCurrentText("corner2")
    seeded = ws.annotation.labels("corner2", ws.step).copy()  # from MetaWorld's segmentation
    assert set(np.unique(seeded)) >= {ACTION_CRITICAL, SUPPORT, NUISANCE}
    regions.graphics.setFocus()
    qtbot.keyClick(regions.graphics, Qt.Key.Key_B)
    qtbot.keyClick(regions.graphics, Qt.Key.Key_3)
    regions.size.setValue(2)
    drag(regions, [(20 + 4 * i, 60.5) for i in range(10)])  # paint nuisance across the table
    painted = ws.annotation.labels(regions.camera, ws.step)
    assert (painted[60, 21:56] == NUISANCE).all() and (painted != seeded).any()
    assert regions.nmr_frame.text().startswith("NMR@10: ")
    window.grab().save(str(tmp_path / "metaworld.png"))
    assert "Meta-World" in window.about_text()
    window.controller.stop()
    qtbot.waitUntil(lambda: ws.recording.path is not None and ws.recording.path.exists(),
                    timeout=300_000)
    assert "drawer-close-v3" in ws.recording.path.name
    window.close()


@pytest.mark.slow
def test_train_reference_on_metaworld_demos_then_eval_into_its_card(tmp_path):
    from vlascope.core.markdown import sections
    from vlascope.policies.reference.model_card import write_training_card
    from vlascope.policies.reference.policy import ReferencePolicy

    out = tmp_path / "model"
    log = run_cli("train-reference", "--scene", "metaworld", "--tasks", "drawer-close-v3",
                  "--episodes-per-task", "2", "--epochs", "1", "--batch-size", "16",
                  "--cameras", "corner2", "--out", str(out))
    assert "demos: 2 episodes" in log
    card = out / "model_card.md"
    text = card.read_text()
    assert "the `metaworld` scene" in text and "drawer-close-v3" in text
    assert "--scene metaworld" in text and "--cameras corner2" in text
    policy = ReferencePolicy(weights=out)
    assert policy.cameras == ("corner2",) and policy.cfg.action_dim == 4
    run_cli("eval", "--scene", "metaworld", "--tasks", "drawer-close-v3", "--policy",
            "reference", "--weights", str(out), "--episodes", "1", "--seed", "1000",
            "--doc", str(card))
    key = "eval:metaworld:reference"
    assert "| drawer-close-v3 |" in sections(card.read_text())[key]
    write_training_card(out)  # a retrained card keeps the evaluation section
    assert key in sections(card.read_text())


@pytest.mark.slow
def test_every_mt50_task_resets_and_renders_with_the_robot_in_view():
    small = MetaWorldScene(image_size=(32, 32), cameras=("corner2",))
    try:
        for task in MT50:
            small.reset(task, 0)
            small.step(np.zeros(4))
            frame = small.observe(regions=True)
            assert frame.observation.images["corner2"].std() > 10, task
            labels = frame.regions["corner2"]
            assert (labels == ACTION_CRITICAL).any() and (labels == SUPPORT).any(), task
    finally:
        small.close()
