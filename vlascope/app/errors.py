"""Error dialogs: non-blocking, with the traceback under 'Show Details', so a failure is
visible and the app stays usable."""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable
from types import TracebackType

from PySide6.QtWidgets import QMessageBox, QWidget


def show_error(parent: QWidget | None, title: str, message: str, details: str = "") -> QMessageBox:
    box = QMessageBox(QMessageBox.Icon.Warning, title, message, QMessageBox.StandardButton.Ok,
                      parent)
    box.setObjectName("error-dialog")
    if details:
        box.setDetailedText(details)
    box.setModal(False)
    box.show()
    return box


def install_excepthook(parent: QWidget) -> Callable[[], None]:
    """Uncaught exceptions in slots and callbacks become dialogs instead of a crash.
    Returns the function that puts the previous hook back."""
    previous = sys.excepthook

    def hook(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        if issubclass(kind, KeyboardInterrupt):
            previous(kind, exc, tb)
            return
        details = "".join(traceback.format_exception(kind, exc, tb))
        print(details, file=sys.stderr)
        show_error(parent, "Unexpected error", f"{kind.__name__}: {exc}", details)

    sys.excepthook = hook

    def restore() -> None:
        if sys.excepthook is hook:
            sys.excepthook = previous

    return restore
