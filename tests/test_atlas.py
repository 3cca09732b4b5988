"""The atlas view with real mouse events at 16k points: hover shows the label of the point
under the cursor, a click picks it, Shift+drag lassos a group; in the window it follows the
Features dock (PCA at once, the background embedding when it lands)."""

import numpy as np
import pytest
from matplotlib.path import Path as PolygonPath
from PySide6.QtCore import QPointF, Qt
from qt_events import plot_to_widget

from vlascope.app.docks.atlas import AtlasView

N = 16_000


@pytest.fixture
def atlas(qtbot):
    view = AtlasView()
    qtbot.addWidget(view)
    view.resize(600, 500)
    view.show()
    qtbot.waitExposed(view)
    rng = np.random.default_rng(0)
    xy = rng.normal(size=(N, 2))
    view.set_points(xy, rng.random(N), [f"label {i}" for i in range(N)])
    return view


def test_hover_click_and_lasso_with_the_mouse(qtbot, atlas):
    target = int(np.argmax(atlas.xy[:, 0]))  # the rightmost point: nobody near it
    pos = plot_to_widget(atlas, *atlas.xy[target])
    hovered = []
    atlas.hovered.connect(hovered.append)
    qtbot.mouseMove(atlas.viewport(), pos)
    qtbot.waitUntil(lambda: atlas.hover == target, timeout=5000)
    assert hovered[-1] == target and atlas.tip.isVisible()
    assert atlas.tip.textItem.toPlainText() == f"f{target}: label {target}"
    with qtbot.waitSignal(atlas.picked, timeout=5000) as picked:
        qtbot.mouseClick(atlas.viewport(), Qt.MouseButton.LeftButton, pos=pos)
    assert picked.args == [target] and atlas.selected == [target]
    # Shift+drag a square around the middle: the features inside are lassoed
    corners = [(-0.5, -0.5), (0.5, -0.5), (0.5, 0.5), (-0.5, 0.5), (-0.5, -0.49)]
    points = [plot_to_widget(atlas, x, y) for x, y in corners]
    shift = Qt.KeyboardModifier.ShiftModifier
    with qtbot.waitSignal(atlas.lassoed, timeout=5000) as lassoed:
        qtbot.mousePress(atlas.viewport(), Qt.MouseButton.LeftButton, shift, points[0])
        for p in points[1:]:
            qtbot.mouseMove(atlas.viewport(), p)
        qtbot.mouseRelease(atlas.viewport(), Qt.MouseButton.LeftButton, shift, points[-1])
    drawn = [atlas.plotItem.vb.mapSceneToView(atlas.mapToScene(p)) for p in points]
    expected = np.flatnonzero(PolygonPath([(q.x(), q.y()) for q in drawn])
                              .contains_points(atlas.xy)).tolist()
    assert lassoed.args[0] == expected and 500 < len(expected) < N // 2
    assert atlas.selected == expected


def test_far_from_every_point_nothing_is_hovered(atlas):
    far = atlas.plotItem.vb.mapViewToScene(QPointF(50.0, 50.0))
    assert atlas.nearest(far) == -1
