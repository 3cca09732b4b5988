"""The README's picture of the multi-layer atlas, from real features: SAEs trained on four
residual layers of the shipped reference policy over a tabletop rollout, each layer's UMAP
map (cached beside its SAE), all layers side by side coloured by layer, one feature
hovered and one lassoed group.

    QT_QPA_PLATFORM=offscreen MUJOCO_GL=egl .venv/bin/python scripts/atlas_screenshot.py \
        --out docs/images/atlas-layers.png

About two minutes on a 2-core CPU (numba's first UMAP compile dominates).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("MUJOCO_GL", "egl")

LAYERS = ("trunk.0.resid", "trunk.1.resid", "trunk.2.resid", "trunk.3.resid")


def feature_sets(folder: Path, steps: int) -> list:
    """One trained, described FeatureSet per layer, saved under ``folder``, its UMAP map
    computed and cached where the atlas looks for it."""
    from vlascope.app.docks.atlas import umap_cache
    from vlascope.core.errors import VLAScopeError
    from vlascope.core.features import capture_frames, train_features, visual_positions
    from vlascope.core.live import LiveRollout
    from vlascope.core.sae import save_sae
    from vlascope.core.sae.atlas import atlas
    from vlascope.core.sae.atlas_layers import decoder_directions
    from vlascope.policies.reference.policy import ReferencePolicy
    from vlascope.scenes.tabletop import TabletopScene

    policy = ReferencePolicy(device="cpu")
    out = []
    with TabletopScene() as scene:
        frames = []
        for seed in range(4):  # several rollouts: one may end early (success)
            live = LiveRollout(scene, policy, "pick_red", seed, max_steps=steps)
            for _ in range(steps):
                try:
                    frames.append(live.step().observation)
                except VLAScopeError:
                    break
        for layer in LAYERS:
            samples = capture_frames(policy, frames, layer)
            fs = train_features(samples, policy.visual_token_layout(),
                                visual_positions(policy, layer), expansion=8, k=8,
                                steps=300, task="pick_red")
            fs.path = str(save_sae(fs.sae, folder / layer))
            atlas(decoder_directions(fs), umap_cache(fs.path), wait=True)
            print(f"{layer}: {fs.n_features} features", flush=True)
            out.append(fs)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/images/atlas-layers.png")
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    import numpy as np
    from matplotlib.path import Path as PolygonPath
    from PySide6.QtCore import QPointF
    from PySide6.QtWidgets import QApplication

    from vlascope.app.docks.atlas import AtlasDock

    app = QApplication.instance() or QApplication(sys.argv)
    with tempfile.TemporaryDirectory(prefix="atlas_shot_") as tmp:
        sets = feature_sets(Path(tmp), args.steps)
        dock = AtlasDock()
        dock.resize(900, 680)
        dock.show()
        app.processEvents()
        for fs in sets:
            dock.show_features(fs)
        dock._start_umap()  # cached: every layer's UMAP map at once
        app.processEvents()
        dock.colour.setCurrentText("layer")
        view = dock.view
        # lasso a group in the second tile, hover a feature of the third
        x0, y0, x1, y1 = dock.points.tiles[1]
        cx, cy, r = (x0 + x1) / 2, (y0 + y1) / 2, 0.22
        poly = [(cx + r * np.cos(a), cy + r * np.sin(a)) for a in np.linspace(0, 6.2, 24)]
        inside = np.flatnonzero(PolygonPath(poly).contains_points(view.xy)).tolist()
        view.set_selection(inside)
        dock._lassoed(dock.points.keys(inside))
        third = np.flatnonzero(dock.points.layer == 2)
        target = int(third[np.argmax(view.xy[third, 1])])
        view.hover_at(view.plotItem.vb.mapViewToScene(QPointF(*view.xy[target])))
        app.processEvents()
        if not dock.grab().save(args.out):
            print(f"could not write {args.out}", file=sys.stderr)
            return 1
        print(f"{len(view.xy)} features in {len(sets)} layers ({dock.method.text()}) -> "
              f"{args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
