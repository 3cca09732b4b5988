"""Markdown that commands write into the docs: success tables of several policies side by
side, and marked sections, so one file (docs/model_card.md) holds the output of several
commands and each command rewrites only its own part."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from .atomic import write_text_atomic
from .runner import EvalCell

_BLOCK = re.compile(r"<!-- vlascope:section (\S+) -->\n.*?<!-- vlascope:end \1 -->\n?",
                    re.DOTALL)


def success_table(results: Mapping[str, Sequence[EvalCell]]) -> str:
    """Policy -> cells over the same tasks x variants: one column per policy, each cell
    ``rate (successes/episodes)``, and the mean over rows."""
    names = list(results)
    rows = list(dict.fromkeys((c.task, c.variant) for c in results[names[0]]))
    by = {(n, c.task, c.variant): c for n, cells in results.items() for c in cells}
    one_variant = len({v for _t, v in rows}) == 1
    head = "| task |" if one_variant else "| task | variant |"
    lines = [head + "".join(f" `{n}` |" for n in names),
             "|---|" + ("" if one_variant else "---|") + "---|" * len(names)]
    for t, v in rows:
        label = f"| {t} |" if one_variant else f"| {t} | {v} |"
        lines.append(label + "".join(
            f" {by[n, t, v].success_rate:.0%} ({by[n, t, v].successes}/{by[n, t, v].episodes}) |"
            for n in names))
    means = [sum(by[n, t, v].success_rate for t, v in rows) / len(rows) for n in names]
    lines.append(("| **mean** |" if one_variant else "| **mean** | |")
                 + "".join(f" **{m:.0%}** |" for m in means))
    return "\n".join(lines)


def sections(text: str) -> dict[str, str]:
    """Key -> body of every marked section in ``text``."""
    out = {}
    for m in _BLOCK.finditer(text):
        block = m.group(0)
        out[m.group(1)] = block[block.index("-->\n") + 4:block.rindex("<!-- vlascope:end")]
    return out


def put_section(text: str, key: str, body: str) -> str:
    """``text`` with the section ``key`` replaced by ``body`` (appended if it is new)."""
    if not re.fullmatch(r"\S+", key):
        raise ValueError(f"section key must have no spaces: {key!r}")
    block = (f"<!-- vlascope:section {key} -->\n{body.rstrip()}\n"
             f"<!-- vlascope:end {key} -->\n")
    pattern = re.compile(rf"<!-- vlascope:section {re.escape(key)} -->\n.*?"
                         rf"<!-- vlascope:end {re.escape(key)} -->\n?", re.DOTALL)
    if pattern.search(text):
        return pattern.sub(lambda _m: block, text, count=1)
    return text.rstrip("\n") + "\n\n" + block


def keep_sections(path: str | Path, text: str) -> str:
    """``text`` (a file's new content) with the marked sections the file at ``path`` had,
    so a command that regenerates the file leaves other commands' sections in place."""
    p = Path(path)
    old = sections(p.read_text()) if p.is_file() else {}
    for key, body in old.items():
        if key not in sections(text):
            text = put_section(text, key, body)
    return text


def write_section(path: str | Path, key: str, body: str) -> None:
    """Replace (or add) one marked section of a Markdown file, atomically."""
    p = Path(path)
    text = p.read_text() if p.is_file() else ""
    write_text_atomic(p, put_section(text, key, body))
