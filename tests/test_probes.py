"""Linear probes: separable data is decoded, random labels are not, episodes don't leak."""

import numpy as np
import pytest

from vlascope.core import probes
from vlascope.core.errors import VLAScopeError
from vlascope.core.probes import ProbeResult, linear_probe, probe_layers


def _separable(n=240, d=8, k=3, seed=0):
    rng = np.random.default_rng(seed)
    y = np.array(["pick", "place", "stack"][:k])[np.arange(n) % k]
    centres = rng.normal(0, 5, (k, d))
    x = centres[np.arange(n) % k] + rng.normal(0, 0.5, (n, d))
    return x, y


def test_separable_data_is_decoded():
    x, y = _separable()
    acc, chance = linear_probe(x, y)
    assert acc > 0.98
    assert chance == pytest.approx(1 / 3, abs=0.05)


def test_random_labels_stay_near_chance():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(600, 10))
    y = rng.choice(["a", "b"], size=600)
    acc, chance = linear_probe(x, y, seed=3)
    assert abs(acc - chance) < 0.12
    assert 0.4 < chance < 0.65


def test_group_split_keeps_episodes_disjoint(monkeypatch):
    x, y = _separable(n=200)
    groups = np.arange(200) // 10  # 20 episodes of 10 frames
    seen = {}
    real = probes._split

    def spy(y, groups, test_fraction, seed):
        train, test = real(y, groups, test_fraction, seed)
        seen["train"], seen["test"] = train, test
        return train, test

    monkeypatch.setattr(probes, "_split", spy)
    acc, _ = linear_probe(x, y, groups=groups)
    assert not set(groups[seen["train"]]) & set(groups[seen["test"]])
    assert len(seen["train"]) + len(seen["test"]) == 200 and acc > 0.9


def test_probe_layers_orders_results_and_uses_one_split():
    x, y = _separable(n=160)
    rng = np.random.default_rng(2)
    acts = {"early": rng.normal(size=(160, 8)), "late": x}
    targets = {"task": y, "half": np.where(np.arange(160) < 80, "first", "second")}
    seen = []
    res = probe_layers(acts, targets, groups=np.arange(160) // 8,
                       progress=lambda i, n: seen.append((i, n)))
    assert [(r.layer, r.target) for r in res] == [
        ("early", "task"), ("early", "half"), ("late", "task"), ("late", "half")]
    assert all(isinstance(r, ProbeResult) for r in res)
    by = {(r.layer, r.target): r for r in res}
    assert by["late", "task"].accuracy > 0.95 > by["early", "task"].accuracy
    assert by["late", "task"].classes == ["pick", "place", "stack"]
    assert by["early", "task"].n_test == by["late", "task"].n_test
    assert by["early", "task"].chance == by["late", "task"].chance
    assert seen[-1] == (4, 4)
    assert res[0].to_dict()["layer"] == "early"


def test_probe_errors():
    x, y = _separable(n=40)
    with pytest.raises(VLAScopeError, match="labels"):
        linear_probe(x, y[:-1])
    with pytest.raises(VLAScopeError, match="2 classes"):
        linear_probe(x, np.full(40, "a"))
    with pytest.raises(VLAScopeError, match="no activations"):
        linear_probe(np.zeros((0, 4)), np.array([]))
    with pytest.raises(VLAScopeError, match="group ids"):
        linear_probe(x, y, groups=np.arange(10))
    with pytest.raises(VLAScopeError, match="2 groups"):
        linear_probe(x, y, groups=np.zeros(40))
    with pytest.raises(VLAScopeError, match="test_fraction"):
        linear_probe(x, y, test_fraction=1.5)
    with pytest.raises(VLAScopeError, match="layer 'l1', target 't'"):
        probe_layers({"l1": x}, {"t": np.full(40, "a")})
    with pytest.raises(VLAScopeError, match="at least one"):
        probe_layers({}, {"t": y})
