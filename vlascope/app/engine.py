"""One worker thread for all model and simulator work, so the window never waits on it.

Jobs run one at a time in submission order on the worker thread (the MuJoCo GL context and
the policy live there); their progress, results and errors come back as Qt
signals, delivered on the GUI thread. Every job can be cancelled; a job that raises becomes
a ``failed`` signal with the traceback, never a dead app.
"""

from __future__ import annotations

import itertools
import queue
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QObject, Signal

from vlascope.core.errors import CancelledError, PolicyConnectionLost, VLAScopeError
from vlascope.core.session import Session


class JobContext:
    """Handed to a job: report progress, check for cancel."""

    def __init__(self, engine: Engine, job: Job):
        self._engine, self._job = engine, job

    def progress(self, done: int, total: int) -> None:
        self._engine.progressed.emit(self._job.id, int(done), int(total))

    def cancelled(self) -> bool:
        return self._job.cancel.is_set()


@dataclass
class Job:
    id: int
    name: str
    fn: Callable[[Session, JobContext], Any]
    cancel: threading.Event = field(default_factory=threading.Event)
    on_done: Callable[[Any], None] | None = None
    on_error: Callable[[str, str], None] | None = None
    on_progress: Callable[[int, int], None] | None = None
    on_cancel: Callable[[str], None] | None = None


class Engine(QObject):
    """Owns the worker thread and the Session that lives on it."""

    progressed = Signal(int, int, int)
    finished = Signal(int, object)
    failed = Signal(int, str, str)
    cancelled = Signal(int, str)
    # Any job that met a policy server gone away (before its own ``failed``): the window
    # shows the policy as disconnected, whichever job noticed.
    connection_lost = Signal(str)

    def __init__(self, session_factory: Callable[[], Session] = Session,
                 parent: QObject | None = None):
        super().__init__(parent)
        self._session_factory = session_factory
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._jobs: dict[int, Job] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._current: Job | None = None
        self.session: Session | None = None
        # Shown for jobs submitted without their own error handler.
        self.on_unhandled_error: Callable[[str, str], None] | None = None
        self.finished.connect(self._dispatch_done)
        self.failed.connect(self._dispatch_error)
        self.progressed.connect(self._dispatch_progress)
        self.cancelled.connect(self._dispatch_cancel)
        self._thread = threading.Thread(target=self._loop, name="vlascope-engine", daemon=True)
        self._thread.start()

    # GUI-thread API ---------------------------------------------------------------------
    def submit(self, name: str, fn: Callable[[Session, JobContext], Any], *,
               on_done: Callable[[Any], None] | None = None,
               on_error: Callable[[str, str], None] | None = None,
               on_progress: Callable[[int, int], None] | None = None,
               on_cancel: Callable[[str], None] | None = None) -> Job:
        job = Job(next(self._ids), name, fn, on_done=on_done, on_error=on_error,
                  on_progress=on_progress, on_cancel=on_cancel)
        with self._lock:
            self._jobs[job.id] = job
        self._queue.put(job)
        return job

    def cancel(self, name: str | None = None) -> None:
        """Cancel queued and running jobs (all, or those with this name)."""
        with self._lock:
            for job in self._jobs.values():
                if name is None or job.name == name:
                    job.cancel.set()

    def busy(self, name: str | None = None) -> bool:
        with self._lock:
            return any(name is None or j.name == name for j in self._jobs.values())

    def shutdown(self, timeout: float = 10.0) -> bool:
        """Cancel everything, close the session (publishing a running recording), stop."""
        self.cancel()
        self._queue.put(None)
        self._thread.join(timeout)
        return not self._thread.is_alive()

    # worker thread ----------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                break
            self._run(job)
        if self.session is not None:
            try:
                self.session.close()
            except Exception:  # noqa: BLE001 - closing must not hang the exit
                traceback.print_exc()

    def _run(self, job: Job) -> None:
        if job.cancel.is_set():
            self.cancelled.emit(job.id, f"{job.name} cancelled before it started")
            return
        try:
            if self.session is None:
                self.session = self._session_factory()
            result = job.fn(self.session, JobContext(self, job))
        except CancelledError as e:
            self.cancelled.emit(job.id, str(e))
        except VLAScopeError as e:  # a plugin's failure carries its traceback as details
            if isinstance(e, PolicyConnectionLost):
                self.connection_lost.emit(str(e))
            self.failed.emit(job.id, str(e), e.details)
        except (Exception, SystemExit) as e:  # noqa: BLE001 - a plugin's bug (or its
            # sys.exit) must not end the worker thread and with it the app
            self.failed.emit(job.id, f"{type(e).__name__}: {e}", traceback.format_exc())
        else:
            if job.cancel.is_set():
                self.cancelled.emit(job.id, f"{job.name} cancelled")
            else:
                self.finished.emit(job.id, result)

    # back on the GUI thread -------------------------------------------------------------
    def _take(self, job_id: int) -> Job | None:
        with self._lock:
            return self._jobs.pop(job_id, None)

    def _peek(self, job_id: int) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def _dispatch_done(self, job_id: int, result: Any) -> None:
        job = self._take(job_id)
        if job is not None and job.on_done is not None:
            job.on_done(result)

    def _dispatch_error(self, job_id: int, message: str, details: str) -> None:
        job = self._take(job_id)
        handler = job.on_error if job is not None else None
        handler = handler or self.on_unhandled_error
        if handler is not None:
            handler(message, details)

    def _dispatch_cancel(self, job_id: int, message: str) -> None:
        job = self._take(job_id)
        if job is not None and job.on_cancel is not None:
            job.on_cancel(message)

    def _dispatch_progress(self, job_id: int, done: int, total: int) -> None:
        job = self._peek(job_id)
        if job is not None and job.on_progress is not None:
            job.on_progress(done, total)
