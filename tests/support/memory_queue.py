"""ARQ's queue in memory, for the jobs tier: a `workers.queue.enqueue.JobQueue` on the test's clock.

It keeps ARQ's promises that Warden relies on: a job id is refused while its job is queued or running,
and while its result is kept (`keep_result`: an hour unless the function says otherwise, none for the
deadline timers); a deferred job waits for its time; due jobs are handed out in ARQ's order (priority
jobs first, then by time, then by id, as a Redis sorted set orders equal scores); a `Retry` puts the
job back, deferred, with its try counted. Who runs the jobs, and when, is the test's world
(`tests.support.jobs_world`): nothing here runs by itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from workers.queue.enqueue import PRIORITY_MS

ARQ_KEEP_RESULT_SECONDS = 3600.0  # arq.worker.Worker's keep_result default


@dataclass
class QueuedJob:
    function: str
    job_id: str
    args: tuple[Any, ...]
    due: float
    priority: bool
    job_try: int = 1

    @property
    def order(self) -> tuple[float, str]:
        """Its place in ARQ's queue: the score (a priority job's is `PRIORITY_MS` earlier), then the id."""
        return (self.due * 1000 - (PRIORITY_MS if self.priority else 0), self.job_id)


class MemoryQueue:
    """Jobs by id: `queued` (waiting or deferred), `running`, and the ids whose results are kept."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.queued: dict[str, QueuedJob] = {}
        self.running: dict[str, QueuedJob] = {}
        self.kept: dict[str, float] = {}  # job id -> until when its result is kept
        self.refused: list[str] = []  # ids refused as already known, in order
        self.held: dict[str, float] = {}  # job id -> until when it is held (`hold`)

    async def enqueue(
        self,
        function: str,
        job_id: str,
        *args: Any,
        defer_until: float | None = None,
        priority: bool = False,
        room: str = "",
    ) -> bool:
        now = self.clock()
        if self._known(job_id, now):
            self.refused.append(job_id)
            return False
        due = now if defer_until is None else max(now, defer_until)
        self.queued[job_id] = QueuedJob(function, job_id, args, due, priority)
        return True

    def _known(self, job_id: str, now: float) -> bool:
        return (
            job_id in self.queued
            or job_id in self.running
            or self.kept.get(job_id, now) > now
            or self.held.get(job_id, now) > now
        )

    async def hold(
        self, function: str, jobs: Sequence[tuple[str, tuple[Any, ...]]], seconds: float
    ) -> list[bool]:
        now, held = self.clock(), []
        for job_id, _ in jobs:
            free = not self._known(job_id, now)
            if free:
                self.held[job_id] = now + seconds
            held.append(free)
        return held

    async def hold_due(self, prefix: str, limit: int, seconds: float) -> list[str]:
        now = self.clock()
        due = sorted(
            (
                j
                for j in self.queued.values()
                if j.due <= now and j.job_try == 1 and j.job_id.startswith(prefix)
            ),
            key=lambda j: j.order,
        )
        taken = [job.job_id for job in due if not job.priority][:limit]
        for job_id in taken:
            del self.queued[job_id]
            self.held[job_id] = now + seconds
        return taken

    async def release(self, job_ids: Sequence[str]) -> None:
        for job_id in job_ids:
            self.held.pop(job_id, None)

    def next_due(self) -> float | None:
        """When the next queued job is due (None: nothing queued)."""
        return min((job.due for job in self.queued.values()), default=None)

    def take(self) -> QueuedJob | None:
        """The first job due by now, in ARQ's order, moved to `running` (None: none is due)."""
        now = self.clock()
        due = [job for job in self.queued.values() if job.due <= now]
        if not due:
            return None
        job = min(due, key=lambda j: j.order)
        self.running[job.job_id] = self.queued.pop(job.job_id)
        return job

    def retry(self, job: QueuedJob, defer: float) -> None:
        """ARQ's `Retry`: the job back in the queue `defer` seconds from now, its next try."""
        self.running.pop(job.job_id, None)
        job.due, job.job_try = self.clock() + defer, job.job_try + 1
        self.queued[job.job_id] = job

    def finish(self, job: QueuedJob, keep_result: float | None) -> None:
        """The job ran to its end (or failed for good): its result kept `keep_result` seconds (None:
        ARQ's default; 0: not kept, so its id can be queued again at once)."""
        self.running.pop(job.job_id, None)
        keep = ARQ_KEEP_RESULT_SECONDS if keep_result is None else keep_result
        if keep > 0:
            self.kept[job.job_id] = self.clock() + keep

    def drop(self, job_id: str) -> None:
        """The job is lost (a Redis restarted without persistence, say)."""
        self.queued.pop(job_id, None)

    def ids(self, prefix: str = "") -> list[str]:
        """Ids of the queued jobs (those starting with `prefix`), sorted."""
        return sorted(i for i in self.queued if i.startswith(prefix))
