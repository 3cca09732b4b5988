"""2-D map of SAE features (the atlas): one point per feature, placed by its decoder
direction (``source="decoder"``) or by its statistics profile (``source="stats"``).

UMAP gives the good map but is slow: importing umap takes seconds and numba compiles for
~100 s on the first fit of every process. So :func:`atlas` answers at once with a PCA map,
runs UMAP in a worker thread (:class:`AtlasJob`) and caches the result beside the SAE; the
next call, in this process or a later one, reads the cache without importing umap.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import VLAScopeError
from .stats import save_npz_atomic

#: Bump when the embedding itself changes, so that old caches are recomputed.
_CACHE_VERSION = 1
#: Above this many matrix elements PCA uses a randomized SVD (4096x2048: 0.15 s, not 11 s).
_EXACT_SVD_ELEMENTS = 1 << 20

EmbedFn = Callable[..., np.ndarray]


def _check_x(x: Any) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise VLAScopeError(f"the atlas needs a non-empty (features, dims) matrix, got shape "
                            f"{x.shape}")
    if not np.issubdtype(x.dtype, np.number):
        raise VLAScopeError(f"the atlas needs numbers, got dtype {x.dtype}")
    x = np.ascontiguousarray(x, dtype=np.float32)
    if not np.isfinite(x).all():
        raise VLAScopeError("the atlas input contains NaN or infinite values")
    return x


def pca_embedding(x: np.ndarray) -> np.ndarray:
    """(F, 2) scores on the first two principal components: instant, deterministic (signs
    fixed so the largest loading is positive), shown while UMAP runs."""
    x = _check_x(x).astype(np.float64)
    centred = x - x.mean(axis=0)
    out = np.zeros((x.shape[0], 2))
    k = min(2, *x.shape)
    if centred.size <= _EXACT_SVD_ELEMENTS:
        u, s, vt = np.linalg.svd(centred, full_matrices=False)
    else:
        from sklearn.utils.extmath import randomized_svd

        u, s, vt = randomized_svd(centred, k, n_iter=6, random_state=0)
    u, s, vt = u[:, :k], s[:k], vt[:k]
    signs = np.sign(vt[np.arange(k), np.argmax(np.abs(vt), axis=1)])
    signs[signs == 0] = 1.0
    out[:, :k] = u * s * signs
    return out.astype(np.float32)


def umap_embedding(x: np.ndarray, seed: int = 0, n_neighbors: int = 15,
                   metric: str = "cosine") -> np.ndarray:
    """(F, 2) UMAP of the rows (cosine: decoder directions matter by angle, not length).

    Slow: imports umap here and pays numba's JIT on the first fit of a process (~100 s on
    two cores). Never call it on a GUI thread or in a unit test; use :class:`AtlasJob`."""
    x = _check_x(x)
    n = x.shape[0]
    if n < 8:  # too few points for a neighbour graph; PCA says the same
        return pca_embedding(x)
    import umap  # deliberately lazy: importing umap takes seconds

    reducer = umap.UMAP(n_components=2, n_neighbors=max(2, min(n_neighbors, n - 1)),
                        metric=metric, random_state=seed, n_jobs=1,
                        init="spectral" if n >= 32 else "random")
    return np.asarray(reducer.fit_transform(x), np.float32)


def embedding_key(x: np.ndarray, **params: Any) -> str:
    """sha256 of the input's bytes, shape and dtype and of the parameters: the cache key."""
    x = _check_x(x)
    h = hashlib.sha256()
    header = {"shape": list(x.shape), "dtype": x.dtype.str, "version": _CACHE_VERSION,
              **params}
    h.update(json.dumps(header, sort_keys=True, default=str).encode())
    h.update(x.data)
    return h.hexdigest()


def save_embedding(cache_path: str | Path, key: str, embedding: np.ndarray,
                   params: dict[str, Any] | None = None) -> Path:
    """Write an embedding cache (atomically): the embedding, its key and its parameters."""
    cache_path = Path(cache_path)
    emb = np.asarray(embedding, np.float32)
    meta = json.dumps({"key": key, "version": _CACHE_VERSION, "params": params or {}},
                      default=str)
    save_npz_atomic(Path(cache_path), embedding=emb, meta_json=np.asarray(meta))
    return cache_path


def load_embedding(cache_path: str | Path, key: str) -> np.ndarray | None:
    """The cached embedding if the file exists and was made from the same input and
    parameters, else None (a stale or unreadable cache is just a miss)."""
    cache_path = Path(cache_path)
    if not cache_path.is_file():
        return None
    try:
        with np.load(cache_path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta_json"]))
            if meta.get("key") != key:
                return None
            emb = np.asarray(z["embedding"], np.float32)
    except Exception:
        return None
    return emb if emb.ndim == 2 and emb.shape[1] == 2 else None


class AtlasJob:
    """UMAP of ``x`` in a daemon thread, cached at ``cache_path``.

    ``start()`` returns at once; a cache hit finishes the job without a thread (and without
    importing umap). ``result(timeout)`` waits for the embedding (None if not ready, failed
    or cancelled); ``error`` holds what went wrong. ``on_done(job)`` is called from the
    worker thread when it finishes (a GUI should re-emit it as a queued signal).
    ``embed_fn(x, seed=..., n_neighbors=...)`` replaces UMAP (tests, other reducers).
    """

    def __init__(self, x: np.ndarray, cache_path: str | Path, source: str = "decoder",
                 seed: int = 0, *, n_neighbors: int = 15, embed_fn: EmbedFn | None = None,
                 on_done: Callable[[AtlasJob], None] | None = None):
        if source not in ("decoder", "stats"):
            raise VLAScopeError(f"atlas source must be 'decoder' or 'stats', got '{source}'")
        self.x = _check_x(x)
        self.cache_path = Path(cache_path)
        self.source, self.seed, self.n_neighbors = source, int(seed), int(n_neighbors)
        self.params = {"method": "umap", "source": source, "seed": self.seed,
                       "n_neighbors": self.n_neighbors}
        self.key = embedding_key(self.x, **self.params)
        self._embed_fn = embed_fn or umap_embedding
        self._on_done = on_done
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._result: np.ndarray | None = None
        self._error: BaseException | None = None
        self._cancelled = False
        self.from_cache = False

    def cached(self) -> np.ndarray | None:
        """The cached embedding for this input and parameters, if any."""
        return load_embedding(self.cache_path, self.key)

    def start(self) -> None:
        """Run the job (once): instantly from the cache, else in a daemon thread."""
        with self._lock:
            if self._thread is not None or self._done.is_set():
                return
            emb = self.cached()
            if emb is not None and len(emb) == len(self.x):
                self._result, self.from_cache = emb, True
                self._done.set()
            else:
                self._thread = threading.Thread(target=self._run, name="vlascope-atlas",
                                                daemon=True)
                self._thread.start()
                return
        self._notify()

    def _run(self) -> None:
        try:
            emb = np.asarray(self._embed_fn(self.x, seed=self.seed,
                                            n_neighbors=self.n_neighbors), np.float32)
            if emb.shape != (len(self.x), 2) or not np.isfinite(emb).all():
                raise VLAScopeError(f"the embedding has shape {emb.shape} (or non-finite "
                                    f"values); expected ({len(self.x)}, 2)")
            # Cached even when cancelled: the time is spent, the next call gets it free.
            save_embedding(self.cache_path, self.key, emb, self.params)
            self._result = emb
        except BaseException as e:  # reported through .error, never lost in the thread
            self._error = e
        finally:
            self._done.set()
            self._notify()

    def _notify(self) -> None:
        if self._on_done is not None and not self._cancelled:
            self._on_done(self)

    def result(self, timeout: float | None = None) -> np.ndarray | None:
        """The (F, 2) embedding, waiting up to ``timeout`` s (None: until done); None if it
        is not ready by then, failed, was cancelled or was never started."""
        if self._thread is None and not self._done.is_set():
            return None
        self._done.wait(timeout)
        return None if self._cancelled else self._result

    @property
    def done(self) -> bool:
        return self._done.is_set()

    @property
    def error(self) -> BaseException | None:
        return self._error

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def cancel(self) -> None:
        """Best effort: UMAP cannot be interrupted, so the thread runs on (and still fills
        the cache), but waiters are released at once and the result is dropped."""
        self._cancelled = True
        self._done.set()


_jobs: dict[Path, AtlasJob] = {}
_jobs_lock = threading.Lock()


def atlas_job(cache_path: str | Path) -> AtlasJob | None:
    """The job :func:`atlas` started (or found done) for this cache, to wait or poll on."""
    with _jobs_lock:
        return _jobs.get(Path(cache_path).resolve())


def atlas(x: np.ndarray, cache_path: str | Path, *, wait: bool = False,
          background: bool = True, source: str = "decoder", seed: int = 0, n_neighbors: int = 15,
          embed_fn: EmbedFn | None = None,
          timeout: float | None = None) -> tuple[np.ndarray, str]:
    """(embedding, method): ``"umap"`` from the cache (or a finished job), else the PCA map
    with ``"pca"`` while UMAP starts in the background (get it with :func:`atlas_job`; a
    second call for the same input reuses the running job). ``wait=True`` (the CLI) blocks
    until UMAP is done and raises VLAScopeError if it fails. ``background=False`` with
    ``wait=False`` starts nothing (a process about to exit would kill the job): the cached
    UMAP map or PCA."""
    job = AtlasJob(x, cache_path, source, seed, n_neighbors=n_neighbors, embed_fn=embed_fn)
    cached = job.cached()
    if cached is not None and len(cached) == len(job.x):
        return cached, "umap"
    if not wait and not background:
        return pca_embedding(job.x), "pca"
    path = job.cache_path.resolve()
    with _jobs_lock:
        old = _jobs.get(path)
        if old is not None and old.key == job.key and not old.cancelled and old.error is None:
            job = old
        else:
            _jobs[path] = job
    job.start()
    if wait:
        emb = job.result(timeout)
        if emb is None:
            if job.error is not None:
                raise VLAScopeError(f"UMAP embedding failed: {job.error}") from job.error
            raise VLAScopeError("UMAP embedding was cancelled or did not finish in time")
        return emb, "umap"
    if job.done and job.result(0) is not None:
        return job.result(0), "umap"
    return pca_embedding(job.x), "pca"
