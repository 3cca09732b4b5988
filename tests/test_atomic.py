"""The one atomic-write mechanism: a failed write leaves the old file and no debris."""

import pytest

from vlascope.core.atomic import atomic_path, write_text_atomic


def test_atomic_write_replaces_or_leaves_the_old_file(tmp_path):
    target = tmp_path / "sub" / "result.json"
    write_text_atomic(target, "old")
    assert target.read_text() == "old" and oct(target.stat().st_mode & 0o777) == "0o644"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash mid-write")
    assert target.read_text() == "old"
    with atomic_path(target) as a, atomic_path(target) as b:  # two writers: two temp files
        assert a != b
        a.write_text("first")
        b.write_text("second")
    assert target.read_text() == "first"  # the outer block finishes last
    assert sorted(p.name for p in target.parent.iterdir()) == ["result.json"]
