"""The "Connect to a policy server" dialog: an address (``vlascope serve`` or an openpi
server), an optional token and timeout, and the addresses that worked before. It only asks;
the controller connects in the worker, so the window never waits on the network."""

from __future__ import annotations

import json

from PySide6.QtCore import QSettings, Signal
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QVBoxLayout,
    QWidget,
)

DEFAULT_ADDRESS = "ws://127.0.0.1:8000"
RECENT_KEY = "remote/recent"
MAX_RECENT = 8


def recent_addresses(settings: QSettings) -> list[str]:
    """Policy-server addresses that connected before, newest first (tokens are never kept)."""
    try:
        value = json.loads(settings.value(RECENT_KEY, "[]") or "[]")
    except (TypeError, json.JSONDecodeError):
        return []
    return [str(a) for a in value] if isinstance(value, list) else []


def remember_address(settings: QSettings, url: str) -> None:
    recent = [a for a in recent_addresses(settings) if a != url]
    settings.setValue(RECENT_KEY, json.dumps([url, *recent][:MAX_RECENT]))


class ConnectDialog(QDialog):
    """Asks where the policy server is; ``connect_requested`` carries url, token, timeout."""

    connect_requested = Signal(str, str, float)

    def __init__(self, settings: QSettings, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Connect to a policy server")
        self.setObjectName("connect-dialog")
        recent = recent_addresses(settings)
        form = QFormLayout()
        self.address = QLineEdit(recent[0] if recent else DEFAULT_ADDRESS)
        self.address.setToolTip("ws://HOST:PORT of `vlascope serve` or an openpi server, "
                                "or unix:///PATH")
        form.addRow("Address", self.address)
        self.token = QLineEdit()
        self.token.setEchoMode(QLineEdit.EchoMode.Password)
        self.token.setPlaceholderText("optional (default: $VLASCOPE_TOKEN)")
        form.addRow("Token", self.token)
        self.timeout = QDoubleSpinBox()
        self.timeout.setRange(1.0, 3600.0)
        self.timeout.setValue(60.0)
        self.timeout.setSuffix(" s")
        self.timeout.setToolTip("how long one call may take before the server counts as gone")
        form.addRow("Timeout", self.timeout)
        self.recent = QListWidget()
        self.recent.setObjectName("recent-addresses")
        self.recent.addItems(recent)
        self.recent.setMaximumHeight(110)
        self.recent.itemClicked.connect(lambda item: self.address.setText(item.text()))
        self.recent.itemDoubleClicked.connect(self._connect_to)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.connect_button = self.buttons.addButton(
            "Connect", QDialogButtonBox.ButtonRole.AcceptRole)
        self.connect_button.setDefault(True)
        self.buttons.accepted.connect(self._accept)
        self.buttons.rejected.connect(self.reject)
        col = QVBoxLayout(self)
        col.addLayout(form)
        col.addWidget(QLabel("Recent addresses" if recent else "No recent addresses"))
        col.addWidget(self.recent)
        col.addWidget(self.buttons)

    def _connect_to(self, item: QListWidgetItem) -> None:
        self.address.setText(item.text())
        self._accept()

    def _accept(self) -> None:
        url = self.address.text().strip()
        if not url:
            self.address.setFocus()
            return
        self.connect_requested.emit(url, self.token.text(), float(self.timeout.value()))
        self.accept()
