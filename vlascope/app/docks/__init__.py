"""Dock panels: each subscribes to the workspace and owns only its widgets."""

from __future__ import annotations

from PySide6.QtWidgets import QDockWidget, QVBoxLayout, QWidget


class Panel(QDockWidget):
    """A dock with a named object (so its place persists) and a vertical body to fill."""

    def __init__(self, title: str, object_name: str, parent: QWidget | None = None):
        super().__init__(title, parent)
        self.setObjectName(object_name)
        body = QWidget()
        self.body = QVBoxLayout(body)
        self.body.setContentsMargins(4, 4, 4, 4)
        self.setWidget(body)
