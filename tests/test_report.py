"""The paper's protocol: NMR@k vs success table, correlations and plot files."""

import json

import numpy as np
import pytest

from vlascope.core.report import Cell, correlations, run_report, write_report
from vlascope.core.saliency.iss import ISSConfig


def synthetic_cells():
    rng = np.random.default_rng(0)
    cells = []
    for i in range(10):
        nmr = i / 10
        c = Cell("model", f"task{i}", "v", episodes=10, successes=int(round(10 * (1 - nmr))))
        c.nmr = {"10": list(nmr + 0.02 * rng.standard_normal(3))}
        cells.append(c)
    return cells


def test_correlation_and_files(tmp_path):
    cells = synthetic_cells()
    corr = correlations(cells, [10.0])
    assert corr["all"]["10"]["pearson"] < -0.9
    path = write_report(cells, [10.0], tmp_path, {"x": 1})
    text = path.read_text()
    assert "| model | task3 | v | 70% (7/10) |" in text and "Pearson" in text
    data = json.loads((tmp_path / "report.json").read_text())
    assert len(data["cells"]) == 10
    assert (tmp_path / "nmr_vs_success.png").stat().st_size > 5000


def test_constant_success_is_reported_not_crashed(tmp_path):
    cells = synthetic_cells()
    for c in cells:
        c.successes = 10
    corr = correlations(cells, [10.0])
    assert "constant" in corr["all"]["10"]["error"]
    assert "constant" in write_report(cells, [10.0], tmp_path, {}).read_text()


@pytest.mark.slow
def test_run_report_on_the_reference_policy(scene, tmp_path):
    from vlascope.policies.reference.policy import ReferencePolicy

    policy = ReferencePolicy()
    cells = run_report(scene, {"reference": policy}, ["pick_red"], ["default", "shortcut_test"],
                       1, tmp_path, ISSConfig(n_masks=10, estimator="toolkit-improved"), every=30,
                       ks=(10, 50))
    assert [(c.task, c.variant) for c in cells] == [("pick_red", "default"),
                                                    ("pick_red", "shortcut_test")]
    for c in cells:
        assert c.episodes == 1 and 0 <= c.mean_nmr(10) <= 1
    assert len(list((tmp_path / "episodes" / "reference").glob("*.h5"))) == 2
