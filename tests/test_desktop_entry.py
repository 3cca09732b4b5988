"""`vlascope install-desktop`: the freedesktop entry, icon and episode MIME type, checked
with the desktop's own tools (desktop-file-validate, update-mime-database, GLib's gio)."""

import os
import shutil
import subprocess
from pathlib import Path

import h5py
import pytest
from cli_process import run_cli, run_cli_fails

from vlascope.desktop_integration import MIME_TYPE, install, uninstall


def tool(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} is missing: `bash scripts/setup.sh dev` installs it (as root)"
    return path


def content_type(path: Path, data_dir: Path) -> str:
    """What GLib (file managers' library) says the file is, with our data folder."""
    out = subprocess.run([tool("gio"), "info", "-a", "standard::content-type", str(path)],
                         capture_output=True, text=True, check=True,
                         env={**os.environ, "XDG_DATA_HOME": str(data_dir),
                              "XDG_DATA_DIRS": "/usr/share"}).stdout
    return out.split("standard::content-type:")[1].strip()


@pytest.fixture(scope="module")
def episode(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("rec")
    run_cli("record", "--task", "pick_red", "--episodes", "1", "--max-steps", "3",
            "--out", str(folder / "run.h5"))
    return folder / "run.h5"


@pytest.mark.slow
def test_install_validates_and_episodes_open_in_vlascope_other_hdf5_do_not(tmp_path, episode):
    data = tmp_path / "share"
    out = run_cli("install-desktop", "--data-dir", str(data))
    entry = data / "applications" / "vlascope.desktop"
    assert f"wrote {entry}" in out and "update-mime-database" in out
    subprocess.run([tool("desktop-file-validate"), str(entry)], check=True)
    text = entry.read_text()
    exec_line = next(line for line in text.splitlines() if line.startswith("Exec="))
    program = exec_line.removeprefix("Exec=").split(" ")[0]
    assert exec_line.endswith(" app %f") and os.access(program, os.X_OK)
    version = subprocess.run([program, "--version"], capture_output=True, text=True)
    assert version.stdout.startswith("vlascope ")
    assert (data / "icons/hicolor/scalable/apps/vlascope.svg").is_file()

    plain = tmp_path / "plain.h5"
    with h5py.File(plain, "w") as h5:
        h5["x"] = [1, 2, 3]
    bare = tmp_path / "episode-without-suffix"
    shutil.copy(episode, bare)
    assert content_type(episode, data) == MIME_TYPE
    assert content_type(bare, data) == MIME_TYPE  # by content, not by name
    assert content_type(plain, data) == "application/x-hdf"
    default = subprocess.run([tool("gio"), "mime", MIME_TYPE], capture_output=True, text=True,
                             env={**os.environ, "XDG_DATA_HOME": str(data),
                                  "XDG_DATA_DIRS": "/usr/share"}).stdout
    assert "vlascope.desktop" in default.splitlines()[0]

    out = run_cli("install-desktop", "--uninstall", "--data-dir", str(data))
    assert f"removed {entry}" in out
    assert not entry.exists() and not (data / "vlascope" / "desktop-files.json").exists()
    assert not (data / "mime/packages/vlascope-episode.xml").exists()
    assert content_type(episode, data) == "application/x-hdf"  # the desktop forgot it


def test_a_launcher_path_with_spaces_and_dollars_is_quoted_as_the_spec_asks(tmp_path):
    weird = tmp_path / "my apps" / "v$1 (test)" / "vlascope"
    change = install(tmp_path / "share", command=[str(weird)])
    entry = change.written[0]
    subprocess.run([tool("desktop-file-validate"), str(entry)], check=True)
    exec_line = next(x for x in entry.read_text().splitlines() if x.startswith("Exec="))
    assert exec_line == f'Exec="{tmp_path}/my apps/v\\\\$1 (test)/vlascope" app %f'
    assert f"TryExec={weird}\n" in entry.read_text()


def test_a_file_we_did_not_write_is_never_replaced_nor_removed(tmp_path):
    data = tmp_path / "share"
    theirs = data / "applications" / "vlascope.desktop"
    theirs.parent.mkdir(parents=True)
    theirs.write_text("[Desktop Entry]\nName=Someone else's\n")
    err = run_cli_fails("install-desktop", "--data-dir", str(data))
    assert "were not written by VLAScope" in err and str(theirs) in err
    assert theirs.read_text() == "[Desktop Entry]\nName=Someone else's\n"
    assert not (data / "icons").exists() and not (data / "vlascope").exists()  # none written
    assert "nothing of VLAScope's" in run_cli("install-desktop", "--uninstall",
                                              "--data-dir", str(data))
    assert theirs.is_file()


def test_uninstall_keeps_a_file_changed_since_and_install_is_repeatable(tmp_path):
    data = tmp_path / "share"
    first = install(data, command=["/opt/a/vlascope"])
    again = install(data, command=["/opt/b/vlascope"])  # our own files: replaced
    assert again.written == first.written
    entry = data / "applications" / "vlascope.desktop"
    assert "Exec=/opt/b/vlascope app %f" in entry.read_text()
    entry.write_text(entry.read_text() + "NoDisplay=true\n")  # the user's edit
    change = uninstall(data)
    assert change.kept == [entry] and entry.is_file()
    assert len(change.removed) == 3 and not any(p.exists() for p in change.removed)
    assert uninstall(data).removed == []
