"""SAE feature statistics, concept features and the atlas embedding (no UMAP is run here:
the job is tested with a fake embedding function, the cache through its own writer)."""

import threading
import time

import numpy as np
import pytest

from vlascope.core.errors import UnknownNameError, VLAScopeError
from vlascope.core.sae import atlas as atlas_mod
from vlascope.core.sae.atlas import (
    AtlasJob,
    atlas,
    atlas_job,
    embedding_key,
    load_embedding,
    pca_embedding,
    save_embedding,
)
from vlascope.core.sae.stats import (
    FeatureStats,
    SampleInfo,
    cohens_d,
    concept_features,
    feature_stats,
)


def _info(task, obj=None, phase=None):
    n = len(task)
    return SampleInfo(episode=np.arange(n) // 4, step=np.arange(n) % 4, token=np.full(n, -1),
                      task=task, object=obj, phase=phase)


@pytest.fixture
def synthetic():
    """Feature 3 fires only on task A, feature 5 only in phase 'carry', the rest is noise."""
    rng = np.random.default_rng(0)
    n, f = 400, 12
    task = np.where(np.arange(n) % 2 == 0, "A", "B")
    phase = np.array(["reach", "grasp", "carry", "place"])[(np.arange(n) // 2) % 4]
    obj = np.where(task == "A", "red", "blue")
    codes = np.maximum(rng.normal(0, 1, (n, f)), 0) * (rng.random((n, f)) < 0.3)
    codes[:, 3] = np.where(task == "A", 2 + rng.random(n), 0)
    codes[:, 5] = np.where(phase == "carry", 1 + rng.random(n), 0)
    codes[:, 7] = 0  # dead
    return codes.astype(np.float32), _info(task, obj, phase)


def test_density_mean_and_top_samples_by_hand():
    codes = np.array([[0, 1, 0],
                      [2, 0, 0],
                      [3, 1, 0],
                      [0, 5, 0],
                      [1, 0, 0]], np.float32)
    s = feature_stats(codes, _info(["a", "a", "b", "b", "b"]), n_top=3)
    np.testing.assert_allclose(s.density, [3 / 5, 3 / 5, 0])
    np.testing.assert_allclose(s.mean_active, [2, 7 / 3, 0])
    np.testing.assert_array_equal(s.top_samples, [[2, 1, 4], [3, 0, 2], [-1, -1, -1]])
    np.testing.assert_allclose(s.top_values, [[3, 2, 1], [5, 1, 1], [0, 0, 0]])
    assert s.labels[2] == "dead" and s.n_samples == 5


def test_fewer_active_samples_than_n_top_are_padded():
    codes = np.array([[0.0], [4.0]])
    s = feature_stats(codes, _info(["a", "b"]), n_top=4)
    np.testing.assert_array_equal(s.top_samples, [[1, -1, -1, -1]])


def test_chunked_equals_unchunked(synthetic):
    codes, info = synthetic
    codes = codes.copy()
    codes[10:20, 0] = 9.0  # ties across a block boundary: lower rows must win either way
    whole = feature_stats(codes, info, n_top=8)
    parts = feature_stats(codes, info, n_top=8, chunk=7)
    np.testing.assert_array_equal(whole.top_samples, parts.top_samples)
    np.testing.assert_array_equal(whole.top_samples[0], np.arange(10, 18))
    for name in ("density", "mean_active", "top_values", "task_corr", "phase_corr"):
        np.testing.assert_allclose(getattr(whole, name), getattr(parts, name), atol=1e-12)
    assert whole.labels == parts.labels


def test_memmap_input(tmp_path, synthetic):
    codes, info = synthetic
    mm = np.lib.format.open_memmap(tmp_path / "codes.npy", "w+", np.float32, codes.shape)
    mm[:] = codes
    s = feature_stats(mm, info, chunk=50)
    np.testing.assert_allclose(s.density, feature_stats(codes, info).density)


def test_correlation_is_point_biserial_and_labels(synthetic):
    codes, info = synthetic
    s = feature_stats(codes, info)
    r = np.corrcoef(codes[:, 3], info.task == "A")[0, 1]
    assert s.task_best[3] == "A" and s.task_corr[3] == pytest.approx(r)
    assert s.phase_best[5] == "carry" and s.phase_corr[5] > 0.9
    assert s.labels[3] == "A · red"  # the object follows the task here, both are named
    assert s.labels[5] == "carry"
    assert s.labels[7] == "dead"
    assert s.group_means["task"].shape == (2, codes.shape[1])


def test_label_does_not_repeat_object_named_by_task():
    task = np.array(["pick_red", "pick_blue"] * 20)
    obj = np.array(["red", "blue"] * 20)
    codes = (task == "pick_red").astype(float)[:, None] * np.linspace(1, 2, 40)[:, None]
    codes = np.hstack([codes, np.ones((40, 1)), np.r_[np.ones(4), np.zeros(36)][:, None]])
    s = feature_stats(codes, _info(task, obj))
    assert s.labels[0] == "pick_red"
    assert s.labels[1] == "dense"  # fires everywhere, no category
    assert s.labels[2] == "mixed"  # rare, weakly tied to either task


def test_save_load_round_trip(tmp_path, synthetic):
    codes, info = synthetic
    s = feature_stats(codes, info, n_top=5)
    path = s.save(tmp_path / "sae" / "feature_stats.npz")
    assert not list(path.parent.glob(".*partial"))
    t = FeatureStats.load(path)
    for k, v in s.to_dict().items():
        if k in ("group_names", "group_means"):
            for g in v:
                np.testing.assert_array_equal(np.asarray(v[g]), np.asarray(t.to_dict()[k][g]))
        else:
            np.testing.assert_array_equal(np.asarray(v), np.asarray(getattr(t, k)))
    assert FeatureStats.from_dict(s.to_dict()).labels == s.labels


def test_load_rejects_foreign_file(tmp_path):
    np.savez(tmp_path / "x.npz", a=np.zeros(3))
    with pytest.raises(VLAScopeError):
        FeatureStats.load(tmp_path / "x.npz")
    with pytest.raises(VLAScopeError, match="no such"):
        FeatureStats.load(tmp_path / "missing.npz")


def test_cohens_d_and_concept_features(synthetic):
    codes, info = synthetic
    d = cohens_d(codes, info.task, "A", "B")
    assert d.shape == (codes.shape[1],)
    assert d[3] > 5 and np.argmax(d) == 3
    assert d[7] == 0  # dead in both groups: no spread, d is 0 not NaN
    np.testing.assert_allclose(cohens_d(codes, info.task, "B", "A"), -d)
    a, b = codes[info.task == "A", 3], codes[info.task == "B", 3]
    pooled = np.sqrt(((len(a) - 1) * a.var(ddof=1) + (len(b) - 1) * b.var(ddof=1))
                     / (len(a) + len(b) - 2))
    assert d[3] == pytest.approx((a.mean() - b.mean()) / pooled, rel=1e-6)
    np.testing.assert_allclose(cohens_d(codes, info.task, "A", "B", chunk=13), d, rtol=1e-9)

    found = concept_features(codes, info.task, "A")
    assert found[0][0] == 3 and found[0][1] > 5
    assert all(x[1] >= 0.8 for x in found)
    carry = concept_features(codes, info.phase, "carry", top=1)
    assert [j for j, _ in carry] == [5]


def test_concept_features_within_sub_groups():
    """Object "blue" is named by two tasks. Feature 0 fires hard for one of them only (the
    largest one-vs-rest d), feature 1 moderately for both: split by task, feature 1 wins."""
    rng = np.random.default_rng(0)
    task = np.repeat(["pick_blue", "place_blue", "pick_red", "place_red"], 50)
    obj = np.where(np.char.find(task, "blue") >= 0, "blue", "red")
    codes = np.abs(rng.normal(0, 0.1, (200, 3)))
    codes[task == "pick_blue", 0] += 10
    codes[:, 1] = np.abs(rng.normal(0, 1.0, 200)) + 0.7 * (obj == "blue")
    assert concept_features(codes, obj, "blue")[0][0] == 0
    found = concept_features(codes, obj, "blue", within=task)
    assert found[0][0] == 1 and 0 not in [j for j, _ in found]


def test_stats_errors(synthetic):
    codes, info = synthetic
    with pytest.raises(VLAScopeError, match="rows"):
        feature_stats(codes[:-1], info)
    with pytest.raises(VLAScopeError, match="2-D"):
        feature_stats(codes[0], info)
    with pytest.raises(VLAScopeError, match="empty"):
        feature_stats(np.zeros((0, 3)), _info([]))
    with pytest.raises(VLAScopeError, match="length"):
        SampleInfo(episode=[0, 1], step=[0], token=[0, 0], task=["a", "b"])
    with pytest.raises(UnknownNameError, match="'C'"):
        cohens_d(codes, info.task, "A", "C")
    with pytest.raises(VLAScopeError, match="group labels"):
        concept_features(codes, info.task[:-1], "A")
    with pytest.raises(VLAScopeError, match="nothing to contrast"):
        concept_features(codes, np.full(len(codes), "A"), "A")


# --- atlas ---------------------------------------------------------------------------------


def test_pca_shape_determinism_and_content():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(60, 10)) * np.r_[10, 3, np.ones(8) * 0.1]
    e1, e2 = pca_embedding(x), pca_embedding(x.copy())
    assert e1.shape == (60, 2) and e1.dtype == np.float32
    np.testing.assert_array_equal(e1, e2)
    c = x - x.mean(0)
    assert abs(np.corrcoef(e1[:, 0], c[:, 0])[0, 1]) > 0.99  # first axis: biggest spread
    assert pca_embedding(np.ones((5, 1))).shape == (5, 2)


def test_pca_large_input_uses_randomized_svd_close_to_exact(monkeypatch):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(300, 40)) * np.r_[8, 4, np.ones(38)]
    exact = pca_embedding(x)
    monkeypatch.setattr(atlas_mod, "_EXACT_SVD_ELEMENTS", 10)
    approx = pca_embedding(x)
    np.testing.assert_allclose(approx, exact, atol=1e-2 * np.abs(exact).max())


def test_cache_hit_returns_umap_without_a_job(tmp_path, monkeypatch):
    x = np.random.default_rng(3).normal(size=(20, 6)).astype(np.float32)
    cache = tmp_path / "atlas.npz"
    job = AtlasJob(x, cache, "decoder", seed=0)
    emb = np.arange(40, dtype=np.float32).reshape(20, 2)
    save_embedding(cache, job.key, emb, job.params)

    def boom(*a, **k):
        raise AssertionError("the job must not run on a cache hit")

    monkeypatch.setattr(atlas_mod, "umap_embedding", boom)
    monkeypatch.setattr(AtlasJob, "start", boom)
    out, method = atlas(x, cache)
    assert method == "umap"
    np.testing.assert_array_equal(out, emb)
    # Another input or other parameters miss the cache.
    assert load_embedding(cache, embedding_key(x + 1, **job.params)) is None
    assert load_embedding(cache, AtlasJob(x, cache, "stats").key) is None


def test_job_runs_embed_fn_in_a_thread_and_writes_the_cache(tmp_path):
    x = np.random.default_rng(4).normal(size=(30, 5))
    cache = tmp_path / "sae" / "atlas_decoder.npz"
    threads, release = [], threading.Event()

    def fake(x, seed, n_neighbors):
        threads.append(threading.current_thread())
        release.wait(5)
        return np.c_[x[:, 0], x[:, 1] * seed]

    finished = []
    job = AtlasJob(x, cache, seed=2, embed_fn=fake, on_done=finished.append)
    job.start()
    assert job.result(timeout=0.01) is None and not job.done  # start() did not block
    release.set()
    emb = job.result(timeout=5)
    assert job.done and job.error is None and finished == [job]
    assert threads[0] is not threading.main_thread()
    np.testing.assert_allclose(emb, np.c_[x[:, 0], x[:, 1] * 2], rtol=1e-6)
    np.testing.assert_array_equal(load_embedding(cache, job.key), emb)
    # The next job for the same input comes from the cache, without calling embed_fn.
    again = AtlasJob(x, cache, seed=2, embed_fn=lambda *a, **k: 1 / 0)
    again.start()
    assert again.from_cache and again.done
    np.testing.assert_array_equal(again.result(), emb)


def test_atlas_returns_pca_then_umap_and_reuses_the_job(tmp_path):
    x = np.random.default_rng(5).normal(size=(25, 4))
    cache = tmp_path / "atlas.npz"
    release, calls = threading.Event(), []

    def slow(x, seed, n_neighbors):
        calls.append(1)
        release.wait(5)
        return np.zeros((len(x), 2))

    emb, method = atlas(x, cache, embed_fn=slow)
    assert method == "pca"
    np.testing.assert_array_equal(emb, pca_embedding(x))
    _, method = atlas(x, cache, embed_fn=slow)  # still running: no second job
    assert method == "pca"
    job = atlas_job(cache)
    release.set()
    assert job is not None and job.result(timeout=5) is not None
    assert len(calls) == 1
    assert atlas(x, cache)[1] == "umap"
    assert atlas(x, cache, background=False)[1] == "umap"  # the cache still counts
    other = tmp_path / "other.npz"
    emb, method = atlas(x, other, background=False, embed_fn=slow)
    assert method == "pca" and atlas_job(other) is None and len(calls) == 1


def test_atlas_wait_and_failures(tmp_path):
    x = np.random.default_rng(6).normal(size=(12, 3))
    emb, method = atlas(x, tmp_path / "a.npz", wait=True,
                        embed_fn=lambda x, **k: np.ones((len(x), 2)))
    assert method == "umap" and emb.shape == (12, 2)
    with pytest.raises(VLAScopeError, match="UMAP embedding failed"):
        atlas(x, tmp_path / "b.npz", wait=True, embed_fn=lambda x, **k: np.ones((3, 2)))
    assert not (tmp_path / "b.npz").exists()
    job = AtlasJob(x, tmp_path / "c.npz", embed_fn=lambda x, **k: time.sleep(5))
    job.start()
    job.cancel()
    assert job.done and job.cancelled and job.result() is None
    with pytest.raises(VLAScopeError):
        AtlasJob(x, tmp_path / "d.npz", source="pixels")
    with pytest.raises(VLAScopeError):
        pca_embedding(np.zeros((0, 3)))
    with pytest.raises(VLAScopeError, match="NaN"):
        pca_embedding(np.full((4, 3), np.nan))


def test_profile_places_features_by_what_they_respond_to(synthetic):
    """The statistics atlas input: a task-A feature lies nearer a scaled copy of itself
    than a phase feature, and a dead feature is a zero row, not NaN."""
    codes, info = synthetic
    codes = np.c_[codes, codes[:, 3] * 10]  # feature 12: feature 3, ten times stronger
    p = feature_stats(codes, info).profile()
    assert p.shape == (13, 1 + 2 + 2 + 4)  # density, 2 tasks, 2 objects, 4 phases
    np.testing.assert_allclose(np.linalg.norm(p[[0, 3, 5, 12]], axis=1), 1.0)
    assert np.all(p[7] == 0)
    dist = np.linalg.norm(p - p[3], axis=1)
    assert dist[12] < 0.2 < dist[5]
