"""Plugin manager: every discovered policy and scene plugin with its status, the error of
any that failed to import, loading a policy from a checkpoint folder, and the loaded
policy's hook points (the layer picker)."""

from __future__ import annotations

from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QWidget,
)

from vlascope.core.plugins import PluginRegistry

from . import Panel
from .hook_picker import HookPicker


class PluginsDock(Panel):
    def __init__(self, registry: PluginRegistry, controller, parent: QWidget | None = None):
        super().__init__("Plugins", "dock-plugins", parent)
        self.controller = controller
        col = self.body
        self.table = QTableWidget(0, 4)
        self.table.setHorizontalHeaderLabels(["kind", "name", "status", "source / error"])
        self.table.horizontalHeader().setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        col.addWidget(self.table, 1)
        row = QHBoxLayout()
        self.load_button = QPushButton("Load policy checkpoint...")
        self.load_button.setToolTip("A folder with the policy's weights (for the selected "
                                    "policy plugin)")
        row.addWidget(self.load_button)
        row.addStretch(1)
        col.addLayout(row)
        self.load_button.clicked.connect(self._pick_checkpoint)
        self.hooks_label = QLabel("Hook points of the loaded policy")
        col.addWidget(self.hooks_label)
        self.hooks = HookPicker()
        col.addWidget(self.hooks, 1)
        controller.policy_hooks.connect(self._show_hooks)
        controller.policy_unavailable.connect(self._show_unavailable)
        self.show_registry(registry)

    def show_registry(self, registry: PluginRegistry) -> None:
        self.table.setRowCount(len(registry.entries))
        for i, e in enumerate(registry.entries):
            cells = [e.kind, e.name, "ok" if e.ok else "failed", e.source if e.ok else e.error]
            for j, text in enumerate(cells):
                item = QTableWidgetItem(text or "")
                if not e.ok:
                    item.setForeground(QColor("#e63946"))
                    item.setToolTip(e.error or "")
                self.table.setItem(i, j, item)
        self.table.resizeColumnsToContents()

    def _show_unavailable(self, why: str) -> None:
        self.hooks_label.setToolTip(why)
        if why:
            self.hooks_label.setText(f"No hook points: {why}")

    def _show_hooks(self, points: list) -> None:
        self.hooks.show_points(points)
        self.hooks_label.setText(f"Hook points of the loaded policy ({len(points)})" if points
                                 else "The loaded policy exposes no hook points")

    def load_checkpoint(self, folder: str) -> None:
        self.controller.load_policy(weights=folder)

    def ask_checkpoint(self, policy: str) -> str | None:
        """The checkpoint folder for ``policy`` from the user (None when cancelled)."""
        folder = self.choose_folder(self, f"Checkpoint folder for the {policy} policy")
        return folder or None

    @staticmethod
    def choose_folder(parent: QWidget, title: str) -> str:
        return QFileDialog.getExistingDirectory(parent, title)

    def _pick_checkpoint(self) -> None:
        folder = self.ask_checkpoint(self.controller.ws.run.policy)
        if folder:
            self.load_checkpoint(folder)
