"""The Features dock's table model at Action Atlas scale (16,384 features of one SAE):
sorting by any column equals sorting the arrays, a filter keeps the sort order, and the
selection follows its feature through both (or goes when its feature is filtered out)."""

from types import SimpleNamespace

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QAbstractItemView, QTableView

from vlascope.app.docks.feature_table import COLUMNS, LABEL, FeatureTableModel
from vlascope.core.features import FeatureSet

N = 16_384


def feature_arrays(n=N, seed=0):
    """What the model reads of a FeatureSet: its statistics and per-feature arrays."""
    rng = np.random.default_rng(seed)
    cohen = rng.normal(size=n)
    cohen[::7] = np.nan
    effects = np.full(n, np.nan)
    effects[:32] = rng.random(32)
    fs = SimpleNamespace(
        n_features=n, stats=SimpleNamespace(density=rng.random(n).round(2),
                                            mean_active=rng.gamma(2.0, size=n),
                                            labels=[f"grasp {i % 13}" if i % 3 else ""
                                                    for i in range(n)]),
        step_max=rng.random((40, n)), cohen_d=cohen,
        d_phase=np.where(np.isnan(cohen), "", "grasp"), effects=effects)
    fs.columns = lambda: FeatureSet.columns(fs)  # the real FeatureSet's columns of them
    return fs


@pytest.fixture
def table(qtbot):
    view = QTableView()
    qtbot.addWidget(view)
    model = FeatureTableModel(view)
    view.setModel(model)
    view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    model.set_features(feature_arrays())
    return view, model


def selected(view, model):
    rows = view.selectionModel().selectedRows()
    return model.feature_at(rows[0].row()) if rows else None


def test_sorting_each_column_equals_sorting_the_arrays(table):
    view, model = table
    fs = feature_arrays()
    keys = {"feature": np.arange(N), "density": fs.stats.density,
            "mean": fs.stats.mean_active, "peak step": fs.step_max.argmax(0),
            "Cohen's d": np.where(np.isnan(fs.cohen_d), -np.inf, fs.cohen_d),
            "effect": np.where(np.isnan(fs.effects), -1.0, fs.effects),
            "label": np.array([s.lower() for s in fs.stats.labels], dtype=object)}
    # the default: density, densest first, ties in feature order
    assert model.shown() == sorted(range(N), key=lambda f: (-fs.stats.density[f], f))
    for name, key in keys.items():
        col = COLUMNS.index(name)
        model.sort(col, Qt.SortOrder.AscendingOrder)
        assert model.shown() == sorted(range(N), key=lambda f, k=key: (k[f], f)), name
        model.sort(col, Qt.SortOrder.DescendingOrder)
        shown = [key[f] for f in model.shown()]
        assert shown == sorted(shown, reverse=True), name
    f = 4242
    row = model.row_of(f)
    assert model.data(model.index(row, 0)) == "4242"
    assert model.data(model.index(row, LABEL)) == fs.stats.labels[f]
    assert model.data(model.index(row, COLUMNS.index("effect"))) == "-"  # not measured
    assert model.data(model.index(model.row_of(5), COLUMNS.index("effect"))) == \
        f"{fs.effects[5]:.3g}"


def test_filter_keeps_the_order_and_the_selection_follows(qtbot, table):
    view, model = table
    fs = feature_arrays()
    model.sort(COLUMNS.index("mean"), Qt.SortOrder.DescendingOrder)
    before = model.shown()
    view.selectRow(model.row_of(1000))
    assert selected(view, model) == 1000
    model.set_filter("GRASP 4")  # labels, case-insensitive
    want = [f for f in before if "grasp 4" in fs.stats.labels[f]]
    assert model.shown() == want and model.rowCount() == len(want)
    assert selected(view, model) == (1000 if 1000 in want else None)
    model.set_filter("lasso:7,3,99999,12")  # a group from the atlas; no feature 99999
    assert sorted(model.shown()) == [3, 7, 12] and selected(view, model) is None
    model.set_filter("")
    assert model.shown() == before
    view.selectRow(model.row_of(77))
    model.sort(COLUMNS.index("label"), Qt.SortOrder.AscendingOrder)
    assert selected(view, model) == 77 and model.row_of(77) != before.index(77)
    model.set_filter("77")  # an id: that feature, and labels that contain it
    assert 77 in model.shown() and selected(view, model) == 77
    assert model.row_of(78) == -1 and model.row_of(N + 5) == -1
