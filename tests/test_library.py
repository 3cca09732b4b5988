"""The episode library on real recorded episodes: the index and its rescans, unreadable files,
flags and notes that persist, the recoverable trash, filter and sort; and the Library dock
driven by real mouse and key events (filters, sort, flag, note, open, compare, trash)."""

import json
import os
import shutil

import h5py
import numpy as np
import pytest
from PySide6.QtCore import QPoint, QSettings, Qt
from PySide6.QtWidgets import QApplication, QLineEdit

from vlascope.app.docks.library import DEBOUNCE_MS, FLAG, NOTE, LibraryDock
from vlascope.core.episode import Episode, update_episode
from vlascope.core.errors import OutputExistsError, VLAScopeError
from vlascope.core.library import (
    COLUMNS,
    INDEX_NAME,
    MARKS_NAME,
    TRASH_NAME,
    Library,
    filter_rows,
    sort_rows,
)
from vlascope.core.metrics import episode_nmr
from vlascope.core.runner import rollout

SIZE = (48, 48)
WAIT_MS = 60_000


@pytest.fixture(scope="session")
def recorded_runs(scene, expert, tmp_path_factory):
    """Real expert rollouts: a success with ISS-shaped maps stored (so it has NMR@10), a
    failure (cut short), and one with a counterfactual prompt (an intervention)."""
    folder = tmp_path_factory.mktemp("runs")
    ok = folder / "ok.h5"
    rollout(scene, expert, "pick_red", 0, record_to=ok, policy_name="expert",
            image_size=SIZE)
    with Episode(ok) as ep:
        n, cams = ep.n_steps, ep.cameras
    rng = np.random.default_rng(0)
    update_episode(ok, {f"saliency/iss-toolkit/{c}": rng.random((n, *SIZE), np.float32)
                        for c in cams})
    short = folder / "short.h5"
    rollout(scene, expert, "pick_blue", 1, max_steps=3, record_to=short, policy_name="expert",
            image_size=SIZE)
    prompt = folder / "prompt.h5"
    rollout(scene, expert, "pick_red", 2, max_steps=3, record_to=prompt, policy_name="expert",
            image_size=SIZE, instruction="pick up the blue cube")
    return {"ok": ok, "short": short, "prompt": prompt}


def copy_episode(src, dest, **metadata):
    """A copy of a real episode with some metadata changed (what a different run records)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)
    if metadata:
        with h5py.File(dest, "a") as h5:
            md = json.loads(h5.attrs["metadata"])
            md.update(metadata)
            h5.attrs["metadata"] = json.dumps(md)
    return dest


@pytest.fixture
def folder(recorded_runs, tmp_path):
    """Ten episodes over two tasks, two policies, successes and failures, one in a
    subfolder, plus one unreadable file."""
    root = tmp_path / "lib"
    short = recorded_runs["short"]
    specs = [("pick_red", "reference", True, 0), ("pick_red", "reference", False, 1),
             ("pick_blue", "reference", True, 2), ("pick_blue", "expert", False, 3),
             ("place_red_on_plate", "expert", True, 4), ("pick_red", "expert", False, 5),
             ("pick_blue", "reference-shortcut", True, 6)]
    for task, policy, success, seed in specs:
        copy_episode(short, root / f"{policy}__{task}__seed{seed}.h5", task=task,
                     policy={"name": policy, "id": policy}, success=success, seed=seed)
    (root / "ab").mkdir()
    shutil.copyfile(recorded_runs["ok"], root / "ab" / "ok.h5")
    shutil.copyfile(recorded_runs["prompt"], root / "prompt.h5")
    (root / "broken.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64)
    return root


def by_file(lib):
    return {r.rel: r for r in lib.rows()}


# The index ---------------------------------------------------------------------------------

def test_rows_carry_what_each_episode_recorded(folder, recorded_runs):
    lib = Library([folder]).load()
    assert lib.rows() == []  # nothing indexed yet
    lib.scan()
    rows = by_file(lib)
    assert len(rows) == 10 and (folder / INDEX_NAME).is_file()
    r = rows["reference__pick_blue__seed2.h5"]
    assert (r.task, r.policy, r.variant, r.seed, r.success, r.steps) == \
        ("pick_blue", "reference", "default", 2, True, 3)
    assert r.nmr is None and r.interventions == [] and r.date.startswith("20")
    ok = rows["ab/ok.h5"]
    assert ok.success is True and ok.steps > 3
    with Episode(folder / "ab" / "ok.h5") as ep:
        expected = float(np.nanmean(episode_nmr(ep, "iss-toolkit", (10,))[10]))
    assert ok.nmr == pytest.approx(expected) and ok.nmr_method == "iss-toolkit"
    assert rows["prompt.h5"].interventions == ["prompt"]
    assert rows["prompt.h5"].success is False


def test_rescan_reads_only_new_and_changed_files_and_drops_removed_ones(folder,
                                                                         recorded_runs):
    lib = Library([folder]).load()
    lib.scan()
    assert lib.reads == 10
    again = Library([folder]).load()  # a new process: the index, not the files
    assert len(again.rows()) == 10
    assert again.scan() is False and again.reads == 0
    copy_episode(recorded_runs["short"], folder / "new" / "n.h5", task="stack_red_on_blue")
    changed = folder / "reference__pick_red__seed0.h5"
    st = changed.stat()
    os.utime(changed, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    (folder / "expert__pick_red__seed5.h5").unlink()
    assert again.scan() is True and again.reads == 2
    rows = by_file(again)
    assert "new/n.h5" in rows and rows["new/n.h5"].task == "stack_red_on_blue"
    assert "expert__pick_red__seed5.h5" not in rows and len(rows) == 10
    third = Library([folder]).load()
    assert by_file(third).keys() == rows.keys()
    third.scan()
    assert third.reads == 0
    # painting regions changes NMR: the annotation folder's time is part of the key
    (folder / "ab" / "ok.regions").mkdir()
    third.scan()
    assert third.reads == 1


def test_unreadable_files_get_a_row_with_the_reason(folder, recorded_runs):
    raw = recorded_runs["ok"].read_bytes()
    (folder / "truncated.h5").write_bytes(raw[: len(raw) // 3])
    with h5py.File(folder / "foreign.hdf5", "w") as h5:
        h5["x"] = np.arange(3)
    lib = Library([folder]).load()
    lib.scan()  # never raises
    rows = by_file(lib)
    assert "not a readable HDF5 file" in rows["broken.h5"].error
    assert not rows["broken.h5"].readable and rows["broken.h5"].success is None
    assert rows["truncated.h5"].error
    assert "not a VLAScope episode" in rows["foreign.hdf5"].error
    assert sum(not r.readable for r in rows.values()) == 3
    # damaged maps cost a readable episode its NMR only
    nan_maps = folder / "nan_maps.h5"
    shutil.copyfile(recorded_runs["short"], nan_maps)
    with Episode(nan_maps) as ep:
        n, cams = ep.n_steps, ep.cameras
    update_episode(nan_maps, {f"saliency/iss-toolkit/{c}": np.full((n, *SIZE), np.nan,
                                                                   np.float32) for c in cams})
    lib.scan()
    row = by_file(lib)["nan_maps.h5"]
    assert row.readable and row.nmr is None and "non-finite" in row.nmr_error
    (folder / "nan_maps.h5").unlink()
    (folder / INDEX_NAME).write_text("{not json")  # a damaged index is rebuilt
    fresh = Library([folder]).load()
    assert fresh.rows() == [] and "index not readable" in fresh.problems()[0]
    fresh.scan()
    assert len(fresh.rows()) == 12 and fresh.problems() == []
    # a file of that name that is not ours is never replaced
    (folder / INDEX_NAME).write_text('{"my": "settings"}')
    other = Library([folder]).load()
    other.scan()
    assert len(other.rows()) == 12 and "not a VLAScope library index" in other.problems()[0]
    assert (folder / INDEX_NAME).read_text() == '{"my": "settings"}'


def test_flags_and_notes_survive_rescans_and_a_new_library(folder):
    lib = Library([folder]).load()
    lib.scan()
    rows = by_file(lib)
    lib.set_flag(rows["prompt.h5"], True)
    lib.set_note(rows["ab/ok.h5"], "grasp slipped at step 4")
    lib.scan()
    again = Library([folder]).load()
    again.scan()
    rows = by_file(again)
    assert rows["prompt.h5"].flag and rows["ab/ok.h5"].note == "grasp slipped at step 4"
    assert sum(r.flag for r in rows.values()) == 1
    # episode files are never written by the library
    with Episode(folder / "prompt.h5") as ep:
        assert "flag" not in ep.metadata
    again.set_flag(rows["prompt.h5"], False)
    assert not by_file(Library([folder]).load())["prompt.h5"].flag
    # a damaged marks file is reported and never overwritten
    (folder / MARKS_NAME).write_text("{oops")
    broken = Library([folder]).load()
    assert "not readable" in broken.problems()[0]
    with pytest.raises(VLAScopeError, match="flags and notes not readable"):
        broken.set_flag(by_file(broken)["ab/ok.h5"], True)
    assert (folder / MARKS_NAME).read_text() == "{oops"


def test_trash_is_recoverable_and_touches_only_indexed_episodes(folder, recorded_runs):
    lib = Library([folder]).load()
    lib.scan()
    rows = by_file(lib)
    lib.set_flag(rows["prompt.h5"], True)
    content = (folder / "prompt.h5").read_bytes()
    name = lib.move_to_trash(rows["prompt.h5"])
    assert not (folder / "prompt.h5").exists()
    assert (folder / TRASH_NAME / name).read_bytes() == content
    lib.scan()
    assert "prompt.h5" not in by_file(lib) and lib.reads == 10
    [(fi, trashed, entry)] = lib.trashed()
    assert trashed == name and entry["rel"] == "prompt.h5"
    fi.restore(name)
    assert (folder / "prompt.h5").read_bytes() == content
    lib.scan()
    assert by_file(lib)["prompt.h5"].flag  # its flag came back with it
    # restoring never replaces a file that took the name meanwhile
    name = lib.move_to_trash(by_file(lib)["prompt.h5"])
    shutil.copyfile(recorded_runs["short"], folder / "prompt.h5")
    with pytest.raises(OutputExistsError):
        lib.folders[0].restore(name)
    assert (folder / TRASH_NAME / name).read_bytes() == content
    assert (folder / "prompt.h5").read_bytes() == recorded_runs["short"].read_bytes()
    # refused: unreadable files, and files changed since they were indexed
    lib.scan()
    with pytest.raises(VLAScopeError, match="indexed as readable"):
        lib.move_to_trash(by_file(lib)["broken.h5"])
    target = folder / "expert__pick_blue__seed3.h5"
    row = by_file(lib)[target.name]
    os.utime(target, ns=(row.mtime_ns, row.mtime_ns + 5))
    with pytest.raises(VLAScopeError, match="changed since it was indexed"):
        lib.move_to_trash(row)
    assert target.is_file() and (folder / "broken.h5").is_file()


def test_filter_and_sort(folder):
    lib = Library([folder]).load()
    lib.scan()
    rows = lib.rows()
    assert {r.task for r in filter_rows(rows, task="pick_blue")} == {"pick_blue"}
    assert len(filter_rows(rows, task="pick_blue")) == 3
    assert {r.policy for r in filter_rows(rows, policy="expert")} == {"expert"}
    assert [r.rel for r in filter_rows(rows, text="SEED3 blue")] == \
        ["expert__pick_blue__seed3.h5"]
    lib.set_flag(by_file(lib)["ab/ok.h5"], True)
    assert [r.rel for r in filter_rows(rows, flagged_only=True)] == ["ab/ok.h5"]
    ordered = sort_rows(rows, "seed", failures_first=True)
    outcomes = [r.success for r in ordered]
    n_failed = outcomes.count(False)
    assert outcomes[:n_failed] == [False] * n_failed and outcomes[n_failed] is None
    assert all(o is True for o in outcomes[n_failed + 1:])
    failed_seeds = [r.seed for r in ordered[:n_failed]]
    assert failed_seeds == sorted(failed_seeds)
    by_nmr = sort_rows(rows, "nmr", descending=True)
    assert by_nmr[0].rel == "ab/ok.h5" and all(r.nmr is None for r in by_nmr[1:])
    for column in COLUMNS:
        assert len(sort_rows(rows, column)) == len(rows)
    with pytest.raises(VLAScopeError):
        sort_rows(rows, "colour")


# The dock, with real events --------------------------------------------------------------

def make_dock(qtbot, record_dir, settings_path, extra=()):
    settings = QSettings(str(settings_path), QSettings.Format.IniFormat)
    for f in extra:
        settings.setValue("library/folders", json.dumps([str(f)]))
    dock = LibraryDock(record_dir, settings)
    qtbot.addWidget(dock)
    dock.resize(1100, 420)
    dock.show()
    qtbot.waitExposed(dock)
    wait_scanned(qtbot, dock)
    return dock


def wait_scanned(qtbot, dock):
    qtbot.waitUntil(lambda: not dock.scanning() and not dock.debounce.isActive()
                    and bool(dock.library.rows()), timeout=WAIT_MS)


def quiet(qtbot, dock):
    """Wait until no scan runs or is due (file events of the app's own recordings)."""
    qtbot.wait(DEBOUNCE_MS + 100)
    qtbot.waitUntil(lambda: not dock.scanning() and not dock.debounce.isActive(),
                    timeout=WAIT_MS)


def shown(dock):
    return [r.rel for r in dock.model.rows]


def cell_point(dock, row, column):
    index = dock.model.index(row, column)
    dock.table.scrollTo(index)
    return dock.table.visualRect(index).center()


def click_cell(qtbot, dock, row, column, modifier=Qt.KeyboardModifier.NoModifier):
    qtbot.mouseClick(dock.table.viewport(), Qt.MouseButton.LeftButton, modifier,
                     cell_point(dock, row, column))


def double_click_cell(qtbot, dock, row, column):
    """A real double click: press and release, then the double-click event (QTest's
    mouseDClick alone is no double click to an item view without the press before it)."""
    click_cell(qtbot, dock, row, column)
    qtbot.mouseDClick(dock.table.viewport(), Qt.MouseButton.LeftButton,
                      pos=cell_point(dock, row, column))


def row_of(dock, rel):
    return shown(dock).index(rel)


@pytest.fixture
def dock(qtbot, folder, tmp_path):
    d = make_dock(qtbot, folder, tmp_path / "settings.ini")
    yield d
    d.shutdown()


def test_dock_filters_and_sorts_by_real_events(qtbot, dock):
    assert len(shown(dock)) == 10
    qtbot.keyClicks(dock.filter_edit, "seed3")
    assert shown(dock) == ["expert__pick_blue__seed3.h5"]
    dock.filter_edit.selectAll()
    qtbot.keyClick(dock.filter_edit, Qt.Key.Key_Delete)
    assert len(shown(dock)) == 10
    # task picker: the keyboard walks the (sorted) tasks
    dock.task_box.setFocus()
    qtbot.keyClick(dock.task_box, Qt.Key.Key_Down)
    assert dock.task_box.currentText() == "pick_blue"
    assert {r.task for r in dock.model.rows} == {"pick_blue"} and len(shown(dock)) == 3
    qtbot.keyClick(dock.policy_box, Qt.Key.Key_Down)  # expert
    assert shown(dock) == ["expert__pick_blue__seed3.h5"]
    qtbot.keyClick(dock.task_box, Qt.Key.Key_Home)
    qtbot.keyClick(dock.policy_box, Qt.Key.Key_Home)
    assert len(shown(dock)) == 10
    # sort by seed with a header click, then failures first with the check box
    hh = dock.table.horizontalHeader()
    seed = COLUMNS.index("seed")
    x = hh.sectionViewportPosition(seed) + hh.sectionSize(seed) // 2
    qtbot.mouseClick(hh.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(x, hh.height() // 2))
    assert dock.sort_column == "seed"
    seeds = [r.seed for r in dock.model.rows if r.seed is not None]
    assert seeds in (sorted(seeds), sorted(seeds, reverse=True))
    qtbot.mouseClick(dock.failures_first, Qt.MouseButton.LeftButton)
    outcomes = [r.success for r in dock.model.rows]
    n = outcomes.count(False)
    assert n == 4 and outcomes[:n] == [False] * n and outcomes[n] is None
    assert "10 of 10 episodes, 4 failed, 1 unreadable" in dock.status.text()
    # unreadable files say why
    bad = dock.model.rows[n]
    assert dock.model.index(n, COLUMNS.index("task")).data().startswith("unreadable: ")
    assert bad.rel == "broken.h5"


def test_flag_and_note_by_click_persist_after_reopening(qtbot, dock, folder, tmp_path):
    i = row_of(dock, "prompt.h5")
    click_cell(qtbot, dock, i, FLAG)
    assert dock.model.rows[i].flag and dock.model.index(i, FLAG).data() == "\u2605"
    qtbot.mouseClick(dock.flagged_only, Qt.MouseButton.LeftButton)
    assert shown(dock) == ["prompt.h5"]
    qtbot.mouseClick(dock.flagged_only, Qt.MouseButton.LeftButton)
    i = row_of(dock, "ab/ok.h5")
    double_click_cell(qtbot, dock, i, NOTE)
    editor = QApplication.focusWidget()
    assert isinstance(editor, QLineEdit)
    qtbot.keyClicks(editor, "grasp slipped")
    qtbot.keyClick(editor, Qt.Key.Key_Return)  # the delegate commits on the next loop turn
    qtbot.waitUntil(lambda: dock.model.rows[row_of(dock, "ab/ok.h5")].note == "grasp slipped",
                    timeout=WAIT_MS)
    dock.shutdown()
    dock.close()
    again = make_dock(qtbot, folder, tmp_path / "settings.ini")
    try:
        rows = {r.rel: r for r in again.model.rows}
        assert rows["prompt.h5"].flag and rows["ab/ok.h5"].note == "grasp slipped"
        assert sum(r.flag for r in rows.values()) == 1
        # and clicking again unflags, also on disk
        click_cell(qtbot, again, row_of(again, "prompt.h5"), FLAG)
        assert not {r.rel: r for r in Library([folder]).load().rows()}["prompt.h5"].flag
    finally:
        again.shutdown()


def test_compare_two_selected_calls_the_callback(qtbot, dock):
    assert not dock.compare_button.isEnabled()  # no comparison in this window
    calls = []
    dock.compare_requested = lambda a, b: calls.append((a, b))
    a, b = row_of(dock, "ab/ok.h5"), row_of(dock, "prompt.h5")
    click_cell(qtbot, dock, a, COLUMNS.index("task"))
    assert not dock.compare_button.isEnabled()
    click_cell(qtbot, dock, b, COLUMNS.index("task"), Qt.KeyboardModifier.ControlModifier)
    assert dock.compare_button.isEnabled()
    qtbot.mouseClick(dock.compare_button, Qt.MouseButton.LeftButton)
    assert len(calls) == 1
    assert {os.path.basename(p) for p in calls[0]} == {"ok.h5", "prompt.h5"}
    assert all(os.path.isfile(p) for p in calls[0])


def test_trash_and_restore_from_the_dock(qtbot, dock, folder):
    i = row_of(dock, "expert__pick_blue__seed3.h5")
    click_cell(qtbot, dock, i, COLUMNS.index("task"))
    asked = []
    dock.confirm = lambda title, text: asked.append(text) or False
    qtbot.mouseClick(dock.trash_button, Qt.MouseButton.LeftButton)
    assert asked and (folder / "expert__pick_blue__seed3.h5").is_file()  # said no
    dock.confirm = lambda title, text: True
    qtbot.mouseClick(dock.trash_button, Qt.MouseButton.LeftButton)
    assert not (folder / "expert__pick_blue__seed3.h5").exists()
    assert "expert__pick_blue__seed3.h5" not in shown(dock)
    # the Delete key asks too
    click_cell(qtbot, dock, row_of(dock, "reference__pick_red__seed0.h5"), 1)
    dock.confirm = lambda title, text: asked.append(text) or False
    qtbot.keyClick(dock.table, Qt.Key.Key_Delete)
    assert "reference__pick_red__seed0.h5" in asked[-1]
    assert (folder / "reference__pick_red__seed0.h5").is_file()
    # the unreadable row cannot be trashed
    click_cell(qtbot, dock, row_of(dock, "broken.h5"), COLUMNS.index("task"))
    assert not dock.trash_button.isEnabled()
    dock._fill_restore_menu()
    [action] = dock.restore_menu.actions()
    assert action.text().startswith("expert__pick_blue__seed3.h5")
    action.trigger()
    assert (folder / "expert__pick_blue__seed3.h5").is_file()
    qtbot.waitUntil(lambda: "expert__pick_blue__seed3.h5" in shown(dock), timeout=WAIT_MS)


def test_new_files_appear_without_asking(qtbot, dock, folder, recorded_runs):
    copy_episode(recorded_runs["short"], folder / "later.h5", task="stack_blue_on_red")
    qtbot.waitUntil(lambda: "later.h5" in shown(dock), timeout=WAIT_MS)
    (folder / "later.h5").unlink()
    qtbot.waitUntil(lambda: "later.h5" not in shown(dock), timeout=WAIT_MS)


def test_added_folders_are_listed_and_remembered(qtbot, folder, recorded_runs, tmp_path):
    rec = tmp_path / "recordings"
    copy_episode(recorded_runs["short"], rec / "mine.h5")
    d = make_dock(qtbot, rec, tmp_path / "s.ini")
    assert shown(d) == ["mine.h5"]
    d.add_folder(folder)
    qtbot.waitUntil(lambda: len(shown(d)) == 11, timeout=WAIT_MS)
    d.shutdown()
    d2 = make_dock(qtbot, rec, tmp_path / "s.ini")
    qtbot.waitUntil(lambda: len(shown(d2)) == 11, timeout=WAIT_MS)
    d2.folders.setCurrentRow(1)
    qtbot.mouseClick(d2.remove_folder_button, Qt.MouseButton.LeftButton)
    assert shown(d2) == ["mine.h5"] and (folder / "prompt.h5").is_file()
    d2.shutdown()


def test_screenshot_of_the_dock_is_not_blank(qtbot, dock, tmp_path):
    dock.library.set_flag(dock.model.rows[row_of(dock, "ab/ok.h5")], True)
    dock.refresh()
    image = dock.grab().toImage()
    path = tmp_path / "library.png"
    assert image.save(str(path)) and path.stat().st_size > 5000
    pixels = np.array([image.pixelColor(x, y).lightness()
                       for x in range(0, image.width(), 17) for y in range(0, image.height(), 13)])
    assert pixels.std() > 10  # text and rows, not one flat colour


def test_double_click_opens_the_episode_in_the_window(qtbot, window, folder):
    from test_app import play_steps

    dock = window.library_dock
    assert dock in window.docks and dock.open_requested == window.open_episode
    # what the app records is listed without asking: play, then reset publishes the run
    play_steps(qtbot, window, 2)
    qtbot.keyClick(window, Qt.Key.Key_R, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: any(r.folder == str(window.record_dir) and r.readable
                                and r.policy == "reference" and r.steps >= 2
                                for r in dock.model.rows), timeout=WAIT_MS)
    dock.add_folder(folder)
    qtbot.waitUntil(lambda: "prompt.h5" in shown(dock), timeout=WAIT_MS)
    dock.raise_()
    qtbot.waitUntil(dock.table.isVisible, timeout=WAIT_MS)
    quiet(qtbot, dock)  # a rescan that lands between two clicks would move the rows
    i = row_of(dock, "prompt.h5")
    double_click_cell(qtbot, dock, i, COLUMNS.index("task"))
    qtbot.waitUntil(lambda: getattr(window.workspace.recording, "path", None) is not None
                    and str(window.workspace.recording.path) == str(folder / "prompt.h5"),
                    timeout=WAIT_MS)
    assert window.workspace.n_steps == 3
    # Return opens the selected one too
    quiet(qtbot, dock)
    click_cell(qtbot, dock, row_of(dock, "ab/ok.h5"), COLUMNS.index("task"))
    qtbot.keyClick(dock.table, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: str(window.workspace.recording.path) == str(folder / "ab" / "ok.h5"),
                    timeout=WAIT_MS)
    # Compare on two selected rows shows them side by side in the Scene dock, A then B
    assert dock.compare_requested == window.compare_episodes
    quiet(qtbot, dock)
    click_cell(qtbot, dock, row_of(dock, "ab/ok.h5"), COLUMNS.index("task"))
    click_cell(qtbot, dock, row_of(dock, "prompt.h5"), COLUMNS.index("task"),
               Qt.KeyboardModifier.ControlModifier)
    assert dock.compare_button.isEnabled()
    qtbot.mouseClick(dock.compare_button, Qt.MouseButton.LeftButton)
    ws = window.workspace
    qtbot.waitUntil(lambda: ws.comparison is not None, timeout=WAIT_MS)
    shown_pair = {os.path.basename(str(ws.comparison.path)),
                  os.path.basename(str(ws.recording.path))}
    assert shown_pair == {"ok.h5", "prompt.h5"}
    assert set(window.scene_dock.other_views) == set(window.scene_dock.views)
