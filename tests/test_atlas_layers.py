"""The atlas at Action Atlas scale: several layers' features at once (130,000 points),
with real mouse events. Hover names the (layer, feature) under the cursor, a click selects
exactly that feature of that layer, a lasso selects exactly the points inside its polygon
(against matplotlib's own test of every point), the layer picker shows one layer or all,
colour-by switches between layers and statistics. The multi-layer path from real SAE files
(trained on the reference policy's activations) runs once through the inspector."""

import numpy as np
import pytest
from matplotlib import colormaps
from matplotlib.path import Path as PolygonPath
from PySide6.QtCore import QEvent, Qt
from qt_events import mouse, plot_to_widget
from scipy.spatial import cKDTree

from vlascope.app.docks.atlas import ALL_LAYERS, HOVER_PX, AtlasView
from vlascope.app.docks.point_raster import SIZE_PX, pack_rgb, rasterize
from vlascope.core.errors import VLAScopeError
from vlascope.core.sae.atlas_layers import AtlasLayer, PointIndex, lay_out

SIZES = {"trunk.0.resid": 40_000, "trunk.1.resid": 50_000, "trunk.2.resid": 40_000}
N = sum(SIZES.values())  # 130,000


def synthetic_layers(sizes=SIZES, seed=0) -> list[AtlasLayer]:
    """Clustered 2-D maps (a UMAP atlas looks like this) with real-shaped statistics."""
    rng = np.random.default_rng(seed)
    out = []
    for li, (name, n) in enumerate(sizes.items()):
        centres = rng.normal(scale=3.0, size=(6, 2))
        which = rng.integers(0, 6, n)
        xy = centres[which] + rng.normal(size=(n, 2))
        stats = {"density": rng.random(n), "mean activation": rng.gamma(2.0, size=n),
                 "peak step": rng.integers(0, 30, n).astype(float)}
        out.append(AtlasLayer(name, xy, [f"L{li} label {i}" for i in range(n)], stats))
    return out


def pixels(view) -> np.ndarray:
    """Every point's position in the widget, in pixels (the same mapping as to_widget)."""
    o = plot_to_widget(view, 0.0, 0.0)
    ex, ey = plot_to_widget(view, 1.0, 0.0), plot_to_widget(view, 0.0, 1.0)
    assert ex.y() == o.y() and ey.x() == o.x()  # axis-aligned, no rotation
    return np.column_stack([o.x() + view.xy[:, 0] * (ex.x() - o.x()),
                            o.y() + view.xy[:, 1] * (ey.y() - o.y())])


def isolated(view, layer_index: int) -> int:
    """A point of that layer with no other point within 4 pixels: the mouse, placed on
    it to the nearest pixel, is nearer to it than to any other point."""
    px = pixels(view)
    d, _ = cKDTree(px).query(px, k=2)
    inside = (px[:, 0] > 20) & (px[:, 0] < view.width() - 20) & (px[:, 1] > 20) & \
        (px[:, 1] < view.height() - 20)
    ok = np.flatnonzero((d[:, 1] > 4) & inside &
                        (view.points.layer == layer_index))
    assert len(ok), "no isolated point to hover"
    return int(ok[0])


@pytest.fixture
def view(qtbot):
    v = AtlasView()
    qtbot.addWidget(v)
    v.resize(700, 560)
    v.show()
    qtbot.waitExposed(v)
    points = lay_out(synthetic_layers())
    v.set_points(points.xy, points.values("layer"), points=points, cmap="tab10",
                 categorical=True)
    return v


# the layout and the lookup (no Qt) --------------------------------------------------------
def test_layout_keeps_layer_and_feature_of_every_point():
    layers = synthetic_layers({"a": 300, "b": 500, "c": 200})
    every = lay_out(layers)
    assert len(every) == 1000 and every.names == ["a", "b", "c"]
    assert every.keys([0, 299, 300, 799, 800, 999]) == [("a", 0), ("a", 299), ("b", 0),
                                                         ("b", 499), ("c", 0), ("c", 199)]
    assert every.index_of("b", [0, 499, 500]) == [300, 799]  # 500 is no feature of b
    np.testing.assert_array_equal(every.values("density")[300:800], layers[1].stats["density"])
    # tiles do not overlap, and each layer's points lie in its own tile
    for li, (x0, y0, x1, y1) in enumerate(every.tiles):
        xy = every.xy[every.layer == li]
        assert (xy >= (x0, y0)).all() and (xy <= (x1, y1)).all()
        for lj, (a0, b0, a1, b1) in enumerate(every.tiles):
            if lj != li:
                assert x1 < a0 or a1 < x0 or y1 < b0 or b1 < y0
    one = lay_out(layers, only="b")  # one layer: its own coordinates, unchanged
    assert len(one) == 500 and one.key(7) == ("b", 7)
    np.testing.assert_array_equal(one.xy, layers[1].xy)
    layers[2].stats.pop("density")
    assert np.isnan(lay_out(layers).values("density")[800:]).all()
    with pytest.raises(VLAScopeError, match="no layer 'd'"):
        lay_out(layers, only="d")
    with pytest.raises(VLAScopeError, match="has 3 values for 4"):
        AtlasLayer("x", np.zeros((4, 2)), stats={"density": np.zeros(3)})


def test_the_kd_tree_finds_what_a_scan_of_every_point_finds():
    rng = np.random.default_rng(3)
    xy = rng.normal(size=(20_000, 2)) * (5.0, 0.2)  # very unequal spreads
    index = PointIndex(xy)
    for px in ((0.01, 0.01), (0.05, 0.0007), (0.002, 0.003)):  # pixels not square
        for q in rng.normal(size=(300, 2)) * (5.0, 0.2):
            d = ((xy[:, 0] - q[0]) / px[0]) ** 2 + ((xy[:, 1] - q[1]) / px[1]) ** 2
            i = int(np.argmin(d))
            expected = i if d[i] <= HOVER_PX ** 2 else -1
            assert index.nearest(q[0], q[1], px, HOVER_PX) == expected
    assert PointIndex(np.zeros((0, 2))).nearest(0, 0, (1, 1), 8) == -1



def test_rasterized_discs_equal_drawing_each_point_in_turn():
    """The one-pass numpy drawing against the plainest drawing there is: each point's
    disc written in index order, clipped at the image's edge."""
    rng = np.random.default_rng(5)
    w, h, n = 61, 47, 400
    px, py = rng.uniform(-4, w + 4, n), rng.uniform(-4, h + 4, n)
    px[:40], py[:40] = px[40:80] + 0.7, py[40:80]  # many overlaps
    colours = pack_rgb(rng.integers(0, 256, (n, 3)))
    expected = np.zeros((h, w), np.uint32)
    r = SIZE_PX / 2
    for x, y, c in zip(px, py, colours, strict=True):
        cx, cy = int(np.floor(x)), int(np.floor(y))
        for dy in range(-2, 3):
            for dx in range(-2, 3):
                if dx * dx + dy * dy <= r * r and 0 <= cx + dx < w and 0 <= cy + dy < h:
                    expected[cy + dy, cx + dx] = c
    np.testing.assert_array_equal(rasterize(px, py, colours, w, h), expected)
    assert (rasterize(np.array([np.nan]), np.array([3.0]), colours[:1], w, h) == 0).all()


def test_the_view_shows_each_point_in_its_colour_where_it_is(qtbot, view):
    """What is on screen: at an isolated point's widget position, the grabbed window has
    that point's colour; a zoom step draws the points again, where they now are."""
    def shown_colour(i):
        c = view.grab().toImage().pixelColor(plot_to_widget(view, *view.xy[i]))
        return c.red(), c.green(), c.blue()

    for layer in range(3):
        i = isolated(view, layer)
        assert shown_colour(i) == view.base.colour_of(i) != (0x20, 0x20, 0x20)
    made = view.base.rasterized
    view.plotItem.vb.scaleBy((0.5, 0.5))  # zoom in around the centre
    i = isolated(view, 1)
    assert shown_colour(i) == view.base.colour_of(i)
    assert view.base.rasterized == made + 1
    view.grab()  # a repaint at the same range reuses the image
    assert view.base.rasterized == made + 1

# the view at 130k points, with the mouse -----------------------------------------------
def test_hover_and_click_name_and_select_a_layer_and_feature(qtbot, view):
    assert len(view.xy) == N == 130_000
    target = isolated(view, 1)  # a point of the second layer
    layer, feature = view.points.key(target)
    assert layer == "trunk.1.resid" and target == SIZES["trunk.0.resid"] + feature
    pos = plot_to_widget(view, *view.xy[target])
    mouse(view.viewport(), QEvent.Type.MouseMove, pos)
    qtbot.waitUntil(lambda: view.hover == target, timeout=5000)
    assert view.tip.isVisible()
    assert view.tip.textItem.toPlainText() == f"trunk.1.resid · f{feature}: L1 label {feature}"
    with qtbot.waitSignal(view.picked_key, timeout=5000) as picked:
        qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=pos)
    assert picked.args == ["trunk.1.resid", feature] and view.selected == [target]
    # far from every point: nothing hovered, a click selects nothing new
    empty = plot_to_widget(view, 1.25, -1.25)  # the grid's fourth tile: no fourth layer
    mouse(view.viewport(), QEvent.Type.MouseMove, empty)
    qtbot.waitUntil(lambda: view.hover == -1, timeout=5000)
    assert not view.tip.isVisible()


def test_lasso_selects_exactly_the_points_inside(qtbot, view):
    # a polygon across the first two layers' tiles (a concave one: an L shape)
    x0, y0, x1, y1 = view.points.tiles[0]
    corners = [(x0 + 0.1, y0 + 0.1), (x1 + 0.6, y0 + 0.1), (x1 + 0.6, y0 + 0.5),
               (x0 + 0.5, y0 + 0.5), (x0 + 0.5, y1 - 0.1), (x0 + 0.1, y1 - 0.1)]
    points = [plot_to_widget(view, x, y) for x, y in corners]
    shift = Qt.KeyboardModifier.ShiftModifier
    with qtbot.waitSignal(view.lassoed_keys, timeout=5000) as lassoed:
        qtbot.mousePress(view.viewport(), Qt.MouseButton.LeftButton, shift, points[0])
        for p in points[1:]:
            mouse(view.viewport(), QEvent.Type.MouseMove, p, modifiers=shift)
        qtbot.mouseRelease(view.viewport(), Qt.MouseButton.LeftButton, shift, points[-1])
    drawn = [view.plotItem.vb.mapSceneToView(view.mapToScene(p)) for p in points]
    expected = np.flatnonzero(PolygonPath([(q.x(), q.y()) for q in drawn])
                              .contains_points(view.xy)).tolist()
    keys = lassoed.args[0]
    assert view.selected == expected and keys == view.points.keys(expected)
    per_layer = {name: sum(k[0] == name for k in keys) for name in SIZES}
    assert per_layer["trunk.0.resid"] > 1000 and per_layer["trunk.1.resid"] > 100
    assert per_layer["trunk.2.resid"] == 0
    # and the view's own test equals matplotlib's over every point, for other shapes
    rng = np.random.default_rng(1)
    for _ in range(5):
        poly = rng.uniform(view.xy.min(0), view.xy.max(0), size=(7, 2))
        assert view.inside(poly) == np.flatnonzero(
            PolygonPath(poly).contains_points(view.xy)).tolist()


# the dock: layer picker and colour-by, in the inspector ---------------------------------
def brush_rgb(view, i) -> tuple[int, int, int]:
    return view.base.colour_of(i)


@pytest.mark.slow
def test_layer_picker_and_colour_by_at_130k(window):
    atlas = window.atlas_dock
    atlas.raise_()
    layers = synthetic_layers()
    for lay in layers:
        atlas.add_layer(lay)
    picker = [atlas.layer_pick.itemText(i) for i in range(atlas.layer_pick.count())]
    assert picker == [ALL_LAYERS, *SIZES]
    assert len(atlas.view.xy) == N and "130,000 features in 3 layers" in atlas.method.text()
    assert len(atlas.view.names) == 3  # each tile named
    for name, n in SIZES.items():
        atlas.layer_pick.setCurrentText(name)
        assert len(atlas.view.xy) == n and atlas.points.names == [name]
        assert {atlas.view.key(i)[0] for i in (0, n - 1)} == {name}
    atlas.layer_pick.setCurrentText(ALL_LAYERS)
    assert len(atlas.view.xy) == N
    # colour by layer: every point of a layer has that layer's colour
    atlas.colour.setCurrentText("layer")
    tab10 = (np.asarray(colormaps["tab10"].colors) * 255).astype(np.uint8)
    starts = np.cumsum([0, *SIZES.values()])
    for li in range(3):
        for i in (starts[li], starts[li] + 123, starts[li + 1] - 1):
            assert brush_rgb(atlas.view, i) == tuple(tab10[li])
    # colour by a statistic: the lowest value darkest, the highest brightest of viridis
    atlas.colour.setCurrentText("mean activation")
    values = np.concatenate([lay.stats["mean activation"] for lay in layers])
    lo, hi = int(np.argmin(values)), int(np.argmax(values))
    viridis = (colormaps["viridis"](np.linspace(0, 1, 256)) * 255).astype(np.uint8)
    assert brush_rgb(atlas.view, lo) == tuple(viridis[0, :3])
    assert brush_rgb(atlas.view, hi) == tuple(viridis[255, :3])
    assert brush_rgb(atlas.view, starts[1]) != tuple(tab10[1])


# real SAE files of two layers, through the inspector ------------------------------------
@pytest.fixture(scope="module")
def two_layer_saes(tmp_path_factory):
    """SAEs of trunk.0.resid and trunk.2.resid trained (for real, briefly) on the
    reference policy's activations over a short tabletop rollout, saved as the dock
    saves them."""
    from vlascope.core.features import capture_frames, train_features, visual_positions
    from vlascope.core.live import LiveRollout
    from vlascope.core.sae import save_sae
    from vlascope.policies.reference.policy import ReferencePolicy
    from vlascope.scenes.tabletop import TabletopScene

    policy = ReferencePolicy(device="cpu")
    folder = tmp_path_factory.mktemp("atlas_layers")
    out = {}
    with TabletopScene() as scene:
        live = LiveRollout(scene, policy, "pick_red", 0, max_steps=12)
        frames = [live.step().observation for _ in range(6)]
        for layer, expansion in (("trunk.0.resid", 2), ("trunk.2.resid", 3)):
            samples = capture_frames(policy, frames, layer)
            fs = train_features(samples, policy.visual_token_layout(),
                                visual_positions(policy, layer), expansion=expansion, k=8,
                                steps=40)
            out[layer] = save_sae(fs.sae, folder / layer) / "sae.json"
            out[layer + ":n"] = fs.n_features
    return out


@pytest.mark.slow
def test_saes_of_two_layers_share_the_atlas(qtbot, window, two_layer_saes, monkeypatch):
    from test_app import WAIT_MS, errors_shown, idle, play_steps

    from vlascope.app.docks import atlas as atlas_module

    files = [str(two_layer_saes["trunk.0.resid"]), str(two_layer_saes["trunk.2.resid"])]
    monkeypatch.setattr(atlas_module.QFileDialog, "getOpenFileNames",
                        lambda *a, **k: (files, ""))
    play_steps(qtbot, window, 4)
    atlas, dock = window.atlas_dock, window.features_dock
    atlas.embed_fn = lambda x, seed=0, n_neighbors=15: x[:, :2] * 10.0  # UMAP's stand-in
    atlas.raise_()
    qtbot.mouseClick(atlas.add, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(atlas.layers) == 2, timeout=WAIT_MS)
    idle(qtbot, window)
    n0, n2 = two_layer_saes["trunk.0.resid:n"], two_layer_saes["trunk.2.resid:n"]
    assert n0 != n2
    assert len(atlas.view.xy) == n0 + n2
    qtbot.waitUntil(lambda: all(lay.method == "UMAP" for lay in atlas.layers.values()),
                    timeout=WAIT_MS)
    for name, lay in atlas.layers.items():  # each layer's own map, cached beside its SAE
        fs = atlas.feature_sets[name]
        np.testing.assert_allclose(lay.xy, fs.sae.W_dec.detach().numpy()[:, :2] * 10,
                                   rtol=1e-5)
        np.testing.assert_allclose(lay.stats["density"], fs.stats.density)
        assert atlas_module.umap_cache(fs.path).is_file()
    assert dock.features.layer == "trunk.2.resid"  # the last loaded is browsed
    atlas.layer_pick.setCurrentText("trunk.0.resid")
    assert len(atlas.view.xy) == n0
    atlas.layer_pick.setCurrentText(ALL_LAYERS)
    # a click on a trunk.0.resid point switches the Features dock to that layer
    view = atlas.view
    target = isolated(view, 0)
    feature = view.points.key(target)[1]
    with qtbot.waitSignal(view.picked_key, timeout=5000) as picked:
        qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton,
                         pos=plot_to_widget(view, *view.xy[target]))
    assert picked.args == ["trunk.0.resid", feature]
    assert dock.features.layer == "trunk.0.resid" and dock.selected_feature() == feature
    assert view.selected == [target]
    # a lasso around trunk.2.resid's tile: the Features dock switches back and lists them
    x0, y0, x1, y1 = view.points.tiles[1]
    corners = [(x0 - 0.05, y0 - 0.05), (x1 + 0.05, y0 - 0.05), (x1 + 0.05, y1 + 0.05),
               (x0 - 0.05, y1 + 0.05)]
    points = [plot_to_widget(view, x, y) for x, y in corners]
    shift = Qt.KeyboardModifier.ShiftModifier
    with qtbot.waitSignal(view.lassoed_keys, timeout=5000):
        qtbot.mousePress(view.viewport(), Qt.MouseButton.LeftButton, shift, points[0])
        for p in points[1:]:
            mouse(view.viewport(), QEvent.Type.MouseMove, p, modifiers=shift)
        qtbot.mouseRelease(view.viewport(), Qt.MouseButton.LeftButton, shift, points[-1])
    assert view.selected == np.flatnonzero(view.points.layer == 1).tolist()
    assert dock.features.layer == "trunk.2.resid"
    shown = dock.shown_features()
    assert sorted(shown) == list(range(n2))
    assert atlas.hint.text() == f"lasso: {n2} features (trunk.2.resid {n2})"
    assert not errors_shown(window)
