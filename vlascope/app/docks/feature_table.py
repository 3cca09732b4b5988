"""The Features dock's table as a model over the FeatureSet's arrays.

A QTableWidget holds an item object per cell: 16,384 features made 115,000 items and took
~3 s on the GUI thread each time the browser switched SAE (an atlas click on another
layer does). Here the columns stay numpy arrays, a cell's text is made only when the view
paints it, and sorting and filtering are one numpy pass over the row order; the selection
follows the rows it was on through both (persistent indexes)."""

from __future__ import annotations

from typing import Any

import numpy as np
from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt

COLUMNS = ("feature", "density", "mean", "peak step", "Cohen's d", "effect", "label")
LABEL = COLUMNS.index("label")
Index = QModelIndex | QPersistentModelIndex


class FeatureTableModel(QAbstractTableModel):
    """One row per shown feature; ``order`` holds the features in display order."""

    def __init__(self, parent: Any = None):
        super().__init__(parent)
        self.keys: list[np.ndarray] = []  # per column: the values it sorts by
        self.labels = np.zeros(0, dtype=object)
        self._lower = np.zeros(0, dtype=object)
        self._phase = np.zeros(0, dtype=object)
        self._text: list[Any] = []
        self.order = np.zeros(0, np.int64)
        self._row = np.zeros(0, np.int64)  # feature -> its row, -1 when filtered out
        self._sort = (1, Qt.SortOrder.DescendingOrder)
        self._filter = ""

    # content ------------------------------------------------------------------------------
    def set_features(self, fs: Any) -> None:
        """Show a FeatureSet's features (its ``columns()``), sorted as the table was,
        filter kept."""
        c = fs.columns()
        density, cohen, effect = c["density"], c["cohen_d"], c["effect"]
        n = len(density)
        self.labels = c["label"]
        self._lower = np.array([s.lower() for s in self.labels], dtype=object)
        self._phase = c["d_phase"]
        self.keys = [np.arange(n, dtype=np.float64), density, c["mean"],
                     c["peak_step"].astype(np.float64), np.where(np.isnan(cohen), -np.inf, cohen),
                     np.where(np.isnan(effect), -1.0, effect), self._lower]
        self._text = [None, density, c["mean"], c["peak_step"], cohen, effect, None]
        self.beginResetModel()
        self.order = self._ordered(np.arange(n))
        self._index_rows(n)
        self.endResetModel()

    def _ordered(self, features: np.ndarray) -> np.ndarray:
        column, order = self._sort
        keep = features[self._matches(features)]
        key = self.keys[column][keep] if len(self.keys) else keep
        if order == Qt.SortOrder.DescendingOrder:
            ranks = np.argsort(key, kind="stable")[::-1] if key.dtype == object else \
                np.argsort(-key, kind="stable")
        else:
            ranks = np.argsort(key, kind="stable")
        return keep[ranks]

    def _matches(self, features: np.ndarray) -> np.ndarray:
        text = self._filter.strip().lower()
        if not text:
            return np.ones(len(features), bool)
        if text.startswith("lasso:"):  # a group from the atlas
            group = {int(t) for t in text.removeprefix("lasso:").split(",") if t.isdigit()}
            return np.isin(features, list(group))
        by_label = np.array([text in s for s in self._lower[features]], bool)
        return by_label | (features == int(text) if text.isdigit() else False)

    def _index_rows(self, n: int) -> None:
        self._row = np.full(n, -1, np.int64)
        self._row[self.order] = np.arange(len(self.order))

    def _rearrange(self, features: np.ndarray) -> None:
        """New display order; selections and other persistent indexes follow their
        feature (or are dropped when it is filtered out)."""
        self.layoutAboutToBeChanged.emit()
        old = self.persistentIndexList()
        held = [int(self.order[i.row()]) if 0 <= i.row() < len(self.order) else -1
                for i in old]
        self.order = features
        self._index_rows(len(self._row))
        new = [self.index(int(self._row[f]), i.column()) if f >= 0 and self._row[f] >= 0
               else QModelIndex() for f, i in zip(held, old, strict=True)]
        self.changePersistentIndexList(old, new)
        self.layoutChanged.emit()

    def set_filter(self, text: str) -> None:
        """Features whose id is ``text`` or whose label contains it; ``lasso:1,2,5``: those
        features only; empty: all."""
        self._filter = text
        self._rearrange(self._ordered(np.arange(len(self._row))))

    # lookups ------------------------------------------------------------------------------
    def feature_at(self, row: int) -> int:
        return int(self.order[row])

    def row_of(self, feature: int) -> int:
        """The feature's row, -1 when it is filtered out or not a feature."""
        return int(self._row[feature]) if 0 <= feature < len(self._row) else -1

    def shown(self) -> list[int]:
        """The listed features, top to bottom."""
        return self.order.tolist()

    # QAbstractTableModel ------------------------------------------------------------------
    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008 (Qt's signature)
        return 0 if parent.isValid() else len(self.order)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation,
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return COLUMNS[section]
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if role != Qt.ItemDataRole.DisplayRole or not index.isValid():
            return None
        f, c = int(self.order[index.row()]), index.column()
        if c == 0:
            return str(f)
        if c == LABEL:
            return self.labels[f]
        v = self._text[c][f]
        if c == 1:
            return f"{v:.3f}"
        if c == 2:
            return f"{v:.3g}"
        if c == 3:
            return str(int(v))
        if c == 4:
            return f"{v:.2f} ({self._phase[f]})" if self._phase[f] else "-"
        return "-" if np.isnan(v) else f"{v:.3g}"

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        self._sort = (column, order)
        if len(self.keys):
            self._rearrange(self._ordered(np.arange(len(self._row))))
