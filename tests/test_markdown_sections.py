"""Marked Markdown sections: each command rewrites only its own part of a shared file (the
model card), and success tables put policies side by side."""

from vlascope.core.markdown import (
    keep_sections,
    put_section,
    sections,
    success_table,
    write_section,
)
from vlascope.core.runner import EvalCell


def test_a_section_is_appended_then_replaced_in_place(tmp_path):
    doc = tmp_path / "card.md"
    doc.write_text("# Card\n\nwritten by hand\n")
    write_section(doc, "eval:metaworld:a", "## A\n\nfirst")
    write_section(doc, "eval:other:b", "## B\n\nsecond")
    write_section(doc, "eval:metaworld:a", "## A\n\nrewritten")
    text = doc.read_text()
    assert text.startswith("# Card\n\nwritten by hand\n")
    assert sections(text) == {"eval:metaworld:a": "## A\n\nrewritten\n",
                              "eval:other:b": "## B\n\nsecond\n"}
    assert "first" not in text and text.index("rewritten") < text.index("second")


def test_regenerating_a_file_keeps_the_other_commands_sections(tmp_path):
    doc = tmp_path / "card.md"
    doc.write_text(put_section("# old tables\n", "eval:metaworld:a", "## A\n\nkept"))
    new = keep_sections(doc, "# new tables\n")
    assert new.startswith("# new tables\n") and "old tables" not in new
    assert sections(new) == {"eval:metaworld:a": "## A\n\nkept\n"}
    assert keep_sections(tmp_path / "missing.md", "# x\n") == "# x\n"


def test_success_table_puts_policies_side_by_side():
    a = [EvalCell("reach", "default", 4, 1), EvalCell("push", "default", 4, 4)]
    b = [EvalCell("reach", "default", 4, 4), EvalCell("push", "default", 4, 2)]
    table = success_table({"model": a, "expert": b}).splitlines()
    assert table[0] == "| task | `model` | `expert` |"
    assert table[2] == "| reach | 25% (1/4) | 100% (4/4) |"
    assert table[-1] == "| **mean** | **62%** | **75%** |"
    two_variants = success_table({"m": [EvalCell("t", "v1", 2, 1), EvalCell("t", "v2", 2, 2)]})
    assert "| t | v2 | 100% (2/2) |" in two_variants.splitlines()
