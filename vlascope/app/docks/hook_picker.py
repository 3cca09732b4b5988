"""The layer picker: the loaded policy's hook points grouped by stack (token embeddings,
encoders, the VLM's layers, the action expert's), with the kinds of tokens each holds."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QTreeWidget, QTreeWidgetItem, QWidget

from vlascope.core.policy import HookPointInfo


class HookPicker(QTreeWidget):
    picked = Signal(str)  # a hook point's name

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setColumnCount(2)
        self.setHeaderLabels(["hook point", "tokens"])
        self.setObjectName("hook-picker")
        self.currentItemChanged.connect(self._changed)

    def show_points(self, points: Sequence[HookPointInfo]) -> None:
        self.clear()
        stacks: dict[str, QTreeWidgetItem] = {}
        counts: dict[str, int] = {}
        for p in points:
            if p.stack not in stacks:
                stacks[p.stack] = QTreeWidgetItem(self, [p.stack, ""])
                stacks[p.stack].setFlags(Qt.ItemFlag.ItemIsEnabled)
            QTreeWidgetItem(stacks[p.stack], [p.name, ", ".join(p.tokens)])
            counts[p.stack] = counts.get(p.stack, 0) + 1
        for stack, item in stacks.items():
            item.setText(1, f"{counts[stack]} hook point{'s' if counts[stack] > 1 else ''}")
            item.setExpanded(counts[stack] <= 12)
        self.resizeColumnToContents(0)

    def names(self) -> list[str]:
        out = []
        for i in range(self.topLevelItemCount()):
            top = self.topLevelItem(i)
            out.extend(top.child(j).text(0) for j in range(top.childCount()))
        return out

    def select(self, name: str) -> None:
        hits = [it for it in self.findItems(name, Qt.MatchFlag.MatchExactly |
                                            Qt.MatchFlag.MatchRecursive, 0)
                if it.parent() is not None]
        if hits:
            self.setCurrentItem(hits[0])

    def current_name(self) -> str | None:
        item = self.currentItem()
        return item.text(0) if item is not None and item.parent() is not None else None

    def _changed(self, item: QTreeWidgetItem | None, _previous) -> None:
        if item is not None and item.parent() is not None:
            self.picked.emit(item.text(0))
