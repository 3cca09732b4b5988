"""Dock panels: each subscribes to the workspace and owns only its widgets."""

from __future__ import annotations

from PySide6.QtWidgets import QDockWidget, QScrollArea, QVBoxLayout, QWidget

from vlascope.core.workspace import Workspace


def nmr_text(ws: Workspace) -> str:
    """NMR@k of the shown step as the docks print it, saying why when there is none."""
    k = f"{ws.saliency.k:g}"
    value = ws.nmr_at()
    if value is None:
        why = "no maps" if ws.maps_at() is None else "no region labels"
        return f"NMR@{k}: - ({why})"
    if value != value:  # NaN
        return f"NMR@{k}: undefined (flat map)"
    return f"NMR@{k}: {value:.3f}"


class Panel(QDockWidget):
    """A dock with a named object (so its place persists) and a vertical body to fill."""

    def __init__(self, title: str, object_name: str, parent: QWidget | None = None):
        super().__init__(title, parent)
        self.setObjectName(object_name)
        body = QWidget()
        self.body = QVBoxLayout(body)
        self.body.setContentsMargins(4, 4, 4, 4)
        self.setWidget(body)

    def make_scrollable(self) -> None:
        """Scroll a tall panel instead of letting its minimum size grow the window (a
        tabified dock's minimum applies to the whole dock area)."""
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setWidget(self.widget())
        self.setWidget(scroll)
