"""Rerun export: a real episode of the reference policy (a counterfactual prompt midway,
real ISS maps stored) written to .rrd and read back with rerun-sdk's own reader: every
stream is there, on every step, with the episode's values (frames pixel-exact, the
saliency layer of the stored maps, the regions or the hand annotation, actions, NMR as
``metrics`` computes it, success, the intervention events); Rerun's own CLI (the viewer's
binary) verifies the file; an output that is not ours is never replaced; the CLI and the
File menu do the same."""

import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

rr = pytest.importorskip("rerun", reason="rerun-sdk is an optional extra: setup.sh rerun")
from rerun.chunk import RrdReader  # noqa: E402

from vlascope.core.annotation import AnnotationStore, annotated_regions, annotation_dir  # noqa: E402
from vlascope.core.episode import Episode  # noqa: E402
from vlascope.core.errors import CancelledError, OutputExistsError, VLAScopeError  # noqa: E402
from vlascope.core.metrics import episode_nmr  # noqa: E402
from vlascope.core.regions import ACTION_CRITICAL, LABEL_COLORS, LABEL_NAMES  # noqa: E402
from vlascope.core.rerun_export import (  # noqa: E402
    APPLICATION_ID,
    export_rerun,
    saliency_layer,
)

STEPS = 12
PROMPT = "pick up the blue cube"
METHOD = "iss-toolkit"


@pytest.fixture(scope="module")
def episode(scene, tmp_path_factory):
    """12 steps of the reference policy, told PROMPT on steps 4..7, with ISS maps."""
    from vlascope.core.runner import rollout
    from vlascope.core.saliency.explain_episode import explain_episode
    from vlascope.core.saliency.iss import ISSConfig
    from vlascope.policies.reference.policy import ReferencePolicy

    path = tmp_path_factory.mktemp("rerun") / "ep.h5"
    rollout(scene, ReferencePolicy(name="reference"), "pick_red", 3, max_steps=STEPS,
            record_to=path, policy_name="reference",
            interventions=[{"kind": "prompt", "text": PROMPT, "start": 4, "stop": 8}])
    explain_episode(str(path), "reference", {}, asdict(ISSConfig(n_masks=20)), "iss",
                    budget=4, bandwidth=None, every=None, check=0)
    return path


def read_rrd(path):
    """entity path -> its chunks' rows merged ({column: list}), ordered by step (static
    rows under the key ``(path, "static")``), and the file's recordings."""
    reader = RrdReader(str(path))
    out: dict = {}
    for chunk in reader.stream().to_chunks():
        rows = chunk.to_record_batch().to_pydict()
        rows.pop("rerun.controls.RowId", None)
        key = chunk.entity_path if "step" in rows else (chunk.entity_path, "static")
        merged = out.setdefault(key, {})
        for name, values in rows.items():
            merged.setdefault(name, []).extend(values)
    for merged in out.values():
        if "step" in merged:
            order = np.argsort(merged["step"], kind="stable")
            for name in merged:
                merged[name] = [merged[name][i] for i in order]
    return out, reader.recordings()


def image(row_buffer, row_format, channels):
    (fmt,), (buf,) = row_format, row_buffer
    return np.asarray(buf, np.uint8).reshape(fmt["height"], fmt["width"], channels) \
        if channels else np.asarray(buf, np.uint8).reshape(fmt["height"], fmt["width"])


def scalars(entity):
    return np.array([v[0] for v in entity["Scalars:scalars"]])


@pytest.fixture(scope="module")
def exported(episode, tmp_path_factory):
    out = tmp_path_factory.mktemp("rrd") / "ep.rrd"
    calls = []
    assert export_rerun(episode, out, progress=lambda d, n: calls.append((d, n))) == out
    assert calls[-1] == (STEPS, STEPS) and len(calls) == STEPS
    return out, *read_rrd(out)


def test_every_stream_holds_the_episodes_values_on_every_step(episode, exported):
    out, data, recordings = exported
    assert [(r.application_id, r.kind) for r in recordings] == [(APPLICATION_ID, "recording")]
    # with the views it opens in: the cameras with their layers, the series, the events
    assert [b.application_id for b in RrdReader(str(out)).blueprints()] == [APPLICATION_ID]
    with Episode(episode) as ep:
        assert ep.n_steps == STEPS and ep.cameras == ["front", "wrist"]
        assert ep.saliency_methods() == [METHOD]
        for cam in ep.cameras:
            img = data[f"/cameras/{cam}/image"]
            assert img["step"] == list(range(STEPS))  # the timeline has every step
            # 'time' is the step at the default 10 steps per second
            assert [t.value for t in img["time"]] == [t * 100_000_000 for t in range(STEPS)]
            sal = data[f"/cameras/{cam}/saliency/{METHOD}"]
            reg = data[f"/cameras/{cam}/regions"]
            assert sal["step"] == reg["step"] == list(range(STEPS))
            for t in range(STEPS):
                frame = image(img["Image:buffer"][t], img["Image:format"][t], 3)
                np.testing.assert_array_equal(frame, ep.frame(t, cam))  # pixel-exact
                layer = image(sal["Image:buffer"][t], sal["Image:format"][t], 4)
                stored = ep.saliency(METHOD, cam, t)
                np.testing.assert_array_equal(layer, saliency_layer(stored))
                # the layer shows the map: opaque where it peaks, clear where it is lowest
                peak = np.unravel_index(np.argmax(stored), stored.shape)
                low = np.unravel_index(np.argmin(stored), stored.shape)
                assert layer[peak][3] == round(255 * 0.6) and layer[low][3] == 0
                labels = image(reg["SegmentationImage:buffer"][t],
                               reg["SegmentationImage:format"][t], 0)
                np.testing.assert_array_equal(labels, ep.regions(t, cam))
            context = data[(f"/cameras/{cam}/regions", "static")]["AnnotationContext:context"]
            (classes,) = context[0]
            named = {c["class_id"]: c["class_description"]["info"] for c in classes}
            # action-critical, support, nuisance in the app's colours; unlabeled clear
            assert {k: v["label"] for k, v in named.items()} == LABEL_NAMES
            assert {k: v["color"] for k, v in named.items()} == {
                k: int.from_bytes(bytes([*LABEL_COLORS[k], 255 if k else 0]), "big")
                for k in LABEL_COLORS}
            objects = data[f"/cameras/{cam}/objects"]
            (buf,) = objects["SegmentationImage:buffer"][5]  # uint16 ids, as bytes
            ids = np.asarray(buf, np.uint8).view(np.uint16).reshape(ep.segments(5, cam).shape)
            np.testing.assert_array_equal(ids, ep.segments(5, cam))
        for d, name in enumerate(("dx", "dy", "dz", "gripper")):
            series = data[f"/actions/{name}"]
            assert series["step"] == list(range(STEPS))
            np.testing.assert_array_equal(scalars(series), ep.actions()[:, d])
        np.testing.assert_array_equal(scalars(data["/state/finger_gap"]), ep.states()[:, 3])
        nmr = data[f"/nmr/{METHOD}/k10"]
        assert nmr["step"] == list(range(STEPS))
        expected = episode_nmr(ep, METHOD, (10,))[10]
        assert np.isfinite(expected).all() and np.ptp(expected) > 0  # a real, varying series
        np.testing.assert_array_equal(scalars(nmr), expected)
        np.testing.assert_array_equal(scalars(data["/success"]),
                                      ep.successes().astype(float))
        instruction = ep.metadata["instruction"]
    events = data["/events"]
    said: dict = {}
    for step, (text,) in zip(events["step"], events["TextLog:text"], strict=True):
        said[step] = said.get(step, "") + text
    assert instruction in said[0]
    assert PROMPT in said[4] and "intervention" in said[4]
    assert "ends" in said[8] and instruction in said[8]  # the task's words again
    (summary,) = data[("/episode", "static")]["TextDocument:text"][0]
    assert "pick_red" in summary and PROMPT in summary


def test_an_episode_with_less_exports_what_it_has(tmp_path):
    """Another scene's episode without regions, with coarse maps, display renders and its
    own rate and action names: no regions or NMR, maps stretched over the frames."""
    from vlascope.core.episode import EpisodeWriter, update_episode

    rng = np.random.default_rng(0)
    path = tmp_path / "other.h5"
    meta = {"scene": "elsewhere", "task": "t", "fps": 20, "action_names": ["x", "y", "grip"]}
    with EpisodeWriter(path, meta) as w:
        for t in range(5):
            w.append(state=rng.random(2), action=rng.random(3), action_chunk=rng.random((2, 3)),
                     chunk_index=0, success=t == 4,
                     images={"cam": rng.integers(0, 255, (24, 32, 3), np.uint8)},
                     display={"cam": rng.integers(0, 255, (48, 64, 3), np.uint8)})
    update_episode(path, {"saliency/coarse/cam": rng.random((5, 3, 4)).astype(np.float32)})
    out = tmp_path / "other.rrd"
    export_rerun(path, out)
    data, _ = read_rrd(out)
    entities = {k for k in data if isinstance(k, str)}
    assert not any(e.startswith(("/nmr", "/cameras/cam/regions")) for e in entities)
    assert {"/actions/x", "/actions/y", "/actions/grip", "/state/s0", "/state/s1"} <= entities
    with Episode(path) as ep:
        layer = data["/cameras/cam/saliency/coarse"]
        assert layer["Image:format"][0][0]["height"] == 24  # the frame's size, not 3 x 4
        assert layer["Image:format"][0][0]["width"] == 32
        shown = data["/display/cam/image"]
        np.testing.assert_array_equal(image(shown["Image:buffer"][3], shown["Image:format"][3],
                                            3), ep.display_frame(3, "cam"))
        np.testing.assert_array_equal(scalars(data["/actions/grip"]), ep.actions()[:, 2])
    assert [t.value for t in data["/success"]["time"]] == [t * 50_000_000 for t in range(5)]
    said = [text for (text,) in data["/events"]["TextLog:text"]]
    assert said[-1] == "success" and data["/events"]["step"][-1] == 4


def test_rerun_itself_verifies_the_file(exported):
    """The viewer's own binary (the same version as the SDK) loads and interprets it."""
    out = exported[0]
    done = subprocess.run([sys.executable, "-m", "rerun", "rrd", "verify", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "verified without error" in done.stdout + done.stderr


def test_the_hand_annotation_beside_the_episode_is_what_is_exported(episode, tmp_path):
    copy = tmp_path / "annotated.h5"
    copy.write_bytes(Path(episode).read_bytes())
    with Episode(copy) as ep:
        h, w = ep.frame(0, "front").shape[:2]
    edit = np.full((h, w), 255, np.uint8)
    edit[: h // 2] = ACTION_CRITICAL  # the top half marked action-critical at step 5
    AnnotationStore(annotation_dir(copy)).save("front", 5, edit)
    out = tmp_path / "annotated.rrd"
    export_rerun(copy, out)
    data, _ = read_rrd(out)
    with Episode(copy) as ep:
        labels = annotated_regions(ep)
        reg = data["/cameras/front/regions"]
        got = image(reg["SegmentationImage:buffer"][5], reg["SegmentationImage:format"][5], 0)
        np.testing.assert_array_equal(got, labels["front"][5])
        assert (got[: h // 2] == ACTION_CRITICAL).all()
        assert not np.array_equal(got, ep.regions(5, "front"))  # the edit, not the seed
        expected = episode_nmr(ep, METHOD, (10,), regions=labels)[10]
        np.testing.assert_array_equal(scalars(data[f"/nmr/{METHOD}/k10"]), expected)
        assert expected[5] != episode_nmr(ep, METHOD, (10,))[10][5]


def test_an_output_that_is_not_ours_is_never_replaced(episode, exported, tmp_path):
    theirs = tmp_path / "notes.rrd"
    theirs.write_text("my notes")
    with pytest.raises(OutputExistsError):
        export_rerun(episode, theirs)
    with pytest.raises(VLAScopeError, match="not a Rerun recording vlascope wrote"):
        export_rerun(episode, theirs, overwrite=True)
    assert theirs.read_text() == "my notes"
    other = tmp_path / "other.rrd"  # a real recording, of another application
    stream = rr.RecordingStream("someone_else")
    stream.save(str(other))
    stream.log("x", rr.Scalars(1.0))
    stream.disconnect()
    before = other.read_bytes()
    with pytest.raises(VLAScopeError, match="not a Rerun recording vlascope wrote"):
        export_rerun(episode, other, overwrite=True)
    assert other.read_bytes() == before
    for bad in (tmp_path / "ep.mp4", tmp_path):  # not a .rrd name; a folder
        with pytest.raises(VLAScopeError):
            export_rerun(episode, bad, overwrite=True)
    ours = tmp_path / "ours.rrd"
    ours.write_bytes(exported[0].read_bytes())
    export_rerun(episode, ours, overwrite=True, fps=20.0)  # ours: replaced when asked
    data, _ = read_rrd(ours)
    assert data["/events"]["time"][-1].value == data["/events"]["step"][-1] * 50_000_000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.rrd", "other.rrd",
                                                          "ours.rrd"]


def test_cancel_leaves_nothing(episode, tmp_path):
    out = tmp_path / "cancelled.rrd"
    done = []
    with pytest.raises(CancelledError):
        export_rerun(episode, out, progress=lambda d, n: done.append(d),
                     should_cancel=lambda: len(done) >= 3)
    assert done == [1, 2, 3]
    assert list(tmp_path.iterdir()) == []  # no file, no partial


def test_cli_exports_and_refuses_with_one_clear_line(episode, tmp_path):
    from cli_process import run_cli, run_cli_fails

    out = tmp_path / "cli.rrd"
    printed = run_cli("export-rerun", str(episode), "--out", str(out))
    assert f"rerun -> {out}" in printed and rr.__version__ in printed
    data, _ = read_rrd(out)
    assert data["/cameras/front/image"]["step"] == list(range(STEPS))
    assert "already exists" in run_cli_fails("export-rerun", str(episode), "--out", str(out))
    assert "no such episode" in run_cli_fails("export-rerun", str(tmp_path / "none.h5"),
                                              "--out", str(tmp_path / "x.rrd"))
    corrupt = tmp_path / "corrupt.h5"
    corrupt.write_bytes(Path(episode).read_bytes()[:4096])
    assert "corrupt" in run_cli_fails("export-rerun", str(corrupt), "--out",
                                      str(tmp_path / "y.rrd"))
    # without the SDK: how to install it (a stand-in package that fails to import)
    fake = tmp_path / "no_rerun" / "rerun"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError(\"No module named 'rerun'\")\n")
    env = {**os.environ, "VLASCOPE_PLUGIN_PATH": "",
           "PYTHONPATH": os.pathsep.join([str(fake.parent), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-m", "vlascope.cli", "export-rerun", str(episode),
                           "--out", str(tmp_path / "z.rrd")], capture_output=True, text=True,
                          env=env, timeout=600)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "setup.sh rerun" in done.stderr and "vlascope[rerun]" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cli.rrd", "corrupt.h5", "no_rerun"]


def test_a_full_disk_is_one_line_and_leaves_nothing(episode, tmp_path):
    """The disk-full line every export gives, and no partial file (Rerun's own file sink
    only logs a failed write and then hangs: the export writes the file itself). The full
    disk is a file-size limit (RLIMIT_FSIZE, SIGXFSZ ignored): write() fails with EFBIG."""
    limited = ("import resource, signal, sys\n"
               "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
               "resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))\n"
               "from vlascope.cli import main\n"
               "sys.exit(main(sys.argv[1:]))\n")
    done = subprocess.run([sys.executable, "-c", limited, "export-rerun", str(episode),
                           "--out", str(tmp_path / "full.rrd")], capture_output=True,
                          text=True, timeout=600, env={**os.environ, "VLASCOPE_PLUGIN_PATH": ""})
    lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
    assert done.returncode == 2, done.stderr[-3000:]
    assert len(lines) == 1 and lines[0].startswith("vlascope: error: disk full while "
                                                   "writing"), done.stderr[-3000:]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_file_menu_exports_the_shown_episode(qtbot, window, episode, tmp_path, monkeypatch):
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QMessageBox
    from test_app import WAIT_MS, errors_shown, idle

    idle(qtbot, window)
    assert window.open_episode(str(episode))
    idle(qtbot, window)
    file_menu = window.menuBar().actions()[0].menu()
    action = window.actions_by_name["export-rerun"]
    assert action in file_menu.actions() and "Rerun" in action.text()
    import vlascope.app.rerun_export as gui

    def missing():
        raise VLAScopeError("Rerun export needs rerun-sdk 0.41.0, which is not installed; "
                            "install it with: bash scripts/setup.sh rerun")

    with monkeypatch.context() as m:  # without the SDK: how to install it, no dialog
        m.setattr(gui, "import_rerun", missing)
        action.trigger()
        (shown,) = errors_shown(window)
        assert "setup.sh rerun" in shown.text()
        assert not any(isinstance(d, gui.RerunExportDialog) for d in window.dialogs)
        shown.close()
    action.trigger()
    dialog = window.dialogs[-1]
    assert dialog.windowTitle() == "Export to Rerun" and dialog.fps.value() == 10.0
    assert dialog.out.text() == str(Path(episode).with_suffix(".rrd"))
    theirs = tmp_path / "theirs.rrd"
    theirs.write_text("not ours")
    dialog.out.setText(str(theirs))  # an existing file: asks, and Yes is refused
    qtbot.mouseClick(dialog.export, Qt.MouseButton.LeftButton)
    assert dialog.message.objectName() == "confirm-replace"
    dialog.message.button(QMessageBox.StandardButton.Yes).click()
    qtbot.waitUntil(lambda: dialog.export.isEnabled(), timeout=WAIT_MS)
    qtbot.waitUntil(lambda: dialog.message.objectName() == "error-dialog", timeout=WAIT_MS)
    assert "not a Rerun recording vlascope wrote" in dialog.message.text()
    assert theirs.read_text() == "not ours"
    dialog.message.close()
    out = tmp_path / "menu.rrd"
    dialog.out.setText(str(out))
    with qtbot.waitSignal(dialog.accepted, timeout=WAIT_MS):
        qtbot.mouseClick(dialog.export, Qt.MouseButton.LeftButton)
    assert dialog.result == str(out)
    data, _ = read_rrd(out)
    with Episode(episode) as ep:
        frames = data["/cameras/wrist/image"]
        assert frames["step"] == list(range(STEPS))
        np.testing.assert_array_equal(
            image(frames["Image:buffer"][7], frames["Image:format"][7], 3), ep.frame(7, "wrist"))
    assert not errors_shown(window)
