"""The GUI-free side of the inspector: step-by-step rollouts, the workspace's state and
events, and the recordings the timeline scrubs (live and from a file)."""

import numpy as np
import pytest

from vlascope.core.episode import Episode
from vlascope.core.errors import EpisodeFormatError, ObservationError, VLAScopeError
from vlascope.core.live import LiveRollout
from vlascope.core.recording import FileRecording
from vlascope.core.regions import ACTION_CRITICAL, NUISANCE
from vlascope.core.runner import rollout
from vlascope.core.workspace import Workspace


def test_live_rollout_matches_the_batch_runner(scene, expert, tmp_path):
    """Stepping by hand records the same episode as the CLI's loop."""
    a = rollout(scene, expert, "pick_blue", 3, record_to=tmp_path / "a.h5", max_steps=12)
    live = LiveRollout(scene, expert, "pick_blue", 3, record_to=tmp_path / "b.h5",
                       max_steps=12)
    records = []
    while not live.done:
        records.append(live.step())
    path = live.close()
    assert path and len(records) == a.steps
    with Episode(a.path) as ea, Episode(path) as eb:
        np.testing.assert_array_equal(ea.actions(), eb.actions())
        np.testing.assert_array_equal(ea.frame(5, "front"), eb.frame(5, "front"))
        np.testing.assert_array_equal(records[5].observation.images["front"],
                                      eb.frame(5, "front"))
    with pytest.raises(VLAScopeError, match="over"):
        live.step()


def test_stopping_midway_keeps_the_recording(scene, expert, tmp_path):
    live = LiveRollout(scene, expert, "pick_red", 0, record_to=tmp_path / "stop.h5")
    for _ in range(4):
        live.step()
    with Episode(live.close()) as ep:
        assert ep.n_steps == 4
        assert ep.metadata["stopped_early"] is True
    empty = LiveRollout(scene, expert, "pick_red", 0, record_to=tmp_path / "none.h5")
    assert empty.close() is None and not (tmp_path / "none.h5").exists()


def test_a_policy_for_other_cameras_is_refused_with_the_cameras_named(scene, tmp_path):
    class OtherScenePolicy:  # e.g. a MetaWorld model picked while the tabletop is shown
        cameras = ("corner2",)

        def batch_infer(self, observations):
            raise AssertionError("never asked to act")

    with pytest.raises(ObservationError, match="corner2.*'tabletop' does not have"):
        LiveRollout(scene, OtherScenePolicy(), "pick_red", 0, record_to=tmp_path / "x.h5")
    assert not (tmp_path / "x.h5").exists()


def test_workspace_events_follow_the_live_rollout(scene, expert):
    ws = Workspace()
    seen = []
    ws.step_changed.connect(lambda t: seen.append(("step", t)))
    ws.steps_appended.connect(lambda n: seen.append(("n", n)))
    live = LiveRollout(scene, expert, "pick_red", 1, render_all=True)
    ws.begin_live(live.metadata, list(live.cameras), None)
    for _ in range(3):
        ws.append_step(live.step())
    assert ws.n_steps == 3 and ws.step == 2  # the cursor followed the end
    ws.set_step(0)
    ws.append_step(live.step())
    assert ws.step == 0  # scrubbed back: new steps do not pull the cursor away
    ws.set_step(99)
    assert ws.step == 3  # clamped
    assert ("n", 4) in seen and ("step", 3) in seen
    regions = ws.recording.regions(1)
    assert (regions["front"] == ACTION_CRITICAL).any()


def test_saliency_cache_is_keyed_by_settings_and_gives_nmr(scene, expert):
    ws = Workspace()
    live = LiveRollout(scene, expert, "pick_red", 1, render_all=True)
    ws.begin_live(live.metadata, list(live.cameras), None)
    ws.append_step(live.step())
    labels = ws.recording.regions(0)
    # a map that lights up exactly the robot: nothing of its top mass is nuisance
    maps = {c: (labels[c] == ACTION_CRITICAL).astype(np.float32) for c in labels}
    ws.update_saliency(k=1.0)  # the robot covers more than 1% of the pixels
    ws.put_maps(0, ws.saliency.key(), maps)
    assert ws.maps_at(0) is not None
    assert ws.nmr_at(0) == pytest.approx(0.0, abs=0.02)
    ws.update_saliency(n_masks=400)
    assert ws.maps_at(0) is None and ws.nmr_at(0) is None  # other parameters, other cache
    ws.update_saliency(n_masks=100)
    nuisance = {c: (labels[c] == NUISANCE).astype(np.float32) for c in labels}
    ws.put_maps(0, ws.saliency.key(), nuisance)
    assert ws.nmr_at(0) > 0.5  # the memo is dropped when new maps arrive
    ws.put_maps(0, ws.saliency.key(), {c: np.zeros_like(m) for c, m in maps.items()})
    assert np.isnan(ws.nmr_at(0))  # a flat map has no top k%
    with pytest.raises(VLAScopeError, match="keep probability"):
        ws.update_saliency(p_keep=1.5)


def test_restore_ignores_stale_settings():
    ws = Workspace()
    ws.restore({"run": {"seed": 7, "gone_field": 1}, "saliency": {"p_keep": 3.0}})
    assert ws.run.seed == 7
    assert ws.saliency.p_keep == 0.3  # invalid persisted value: defaults kept
    assert Workspace().state()["saliency"]["n_masks"] == 100


def test_file_recording_reads_what_was_recorded(scene, expert, tmp_path):
    res = rollout(scene, expert, "pick_red", 2, record_to=tmp_path / "ep.h5", max_steps=6,
                  instruction="pick up the blue cube")
    rec = FileRecording(res.path)
    assert rec.n_steps == 6 and rec.actions().shape == (6, scene.action_dim)
    obs = rec.observation(3)
    assert obs.instruction == "pick up the blue cube"  # the counterfactual prompt, not the task's
    with Episode(res.path) as ep:
        np.testing.assert_array_equal(obs.images["wrist"], ep.frame(3, "wrist"))
    with pytest.raises(VLAScopeError, match="outside"):
        rec.frame(6, "front")
    rec.close()
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not hdf5 at all")
    with pytest.raises(EpisodeFormatError):
        FileRecording(bad)


def test_display_renders_are_the_policy_frame_state_and_kept_within_a_budget(
        scene, expert, monkeypatch):
    """A display render shows the same simulator state as the policy's frame (rendered
    before the action), at the asked size; a live recording lets the oldest go past its
    memory budget, and those steps show the policy's frames again."""
    from vlascope.core import recording
    from vlascope.core.display import display_size

    live = LiveRollout(scene, expert, "pick_red", 1, render_all=True)
    live.display_size = (192, 192)
    records = [live.step() for _ in range(4)]
    assert all(r.display["front"].shape == (192, 192, 3) for r in records)
    # step 0's render is the reset state's, as its policy frame is: the same episode reset
    # again and rendered at that size gives it
    replay = LiveRollout(scene, expert, "pick_red", 1, render_all=True)
    want = scene.render_display(("front",), (192, 192))["front"]
    np.testing.assert_array_equal(records[0].display["front"], want)
    replay.discard()
    assert display_size((96, 96), (400, 700)) == (400, 400)  # fills the view, aspect kept
    assert display_size((96, 96), (90, 90)) is None  # no larger than the policy's image
    assert display_size((96, 96), (2000, 2000), limit=640) == (640, 640)
    # a live recording keeps at most DISPLAY_BUDGET bytes of them
    per_step = sum(v.nbytes for v in records[0].display.values())
    monkeypatch.setattr(recording, "DISPLAY_BUDGET", 2 * per_step)
    ws = Workspace()
    ws.begin_live(live.metadata, list(live.cameras), None)
    for r in records:
        ws.append_step(r)
    rec = ws.recording
    assert [rec.display_frame(t, "front") is not None for t in range(4)] == \
        [False, False, True, True]
