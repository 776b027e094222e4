"""Warden reproduces parts of ARQ (its enqueue, its claiming and running of jobs) and reads some of
`arq.Worker`'s private attributes, so it runs on the one ARQ minor version it was checked against."""

from __future__ import annotations

import tomllib
from importlib.metadata import version
from pathlib import Path

from arq.worker import Worker, func

PINNED = "0.28"
PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"

# What workers/queue/claiming.py and running.py read or call on `arq.Worker` (their own aside).
CLAIMING_USES = (
    "sem",
    "job_counter",
    "max_jobs",
    "tasks",
    "in_progress_timeout_s",
    "pool",
    "queue_name",
    "poll_delay_s",
    "loop",
    "_release_sem_dec_counter_on_complete",
    "allow_abort_jobs",
    "queue_read_limit",
    "burst",
    "max_burst_jobs",
    "functions",
    "job_timeout_s",
    "max_tries",
    "retry_jobs",
    "keep_result_s",
    "keep_result_forever",
    "log_results",
    "job_serializer",
    "job_deserializer",
    "ctx",
    "job_tasks",
    "aborting_tasks",
    "on_job_start",
    "on_job_end",
    "after_job_end",
    "jobs_complete",
    "jobs_failed",
    "jobs_retried",
    "finish_job",
    "finish_failed_job",
)

RECHECK = f"""Warden was checked against arq {PINNED}.x. Before moving the pin (pyproject.toml, PINNED here):
- workers/queue/claiming.py: the CLAIM script's keys and conditions against arq.worker.Worker.start_jobs
  (the in-progress key absent, the job's score present and due; the in-progress key set with
  in_progress_timeout_s), and its reads against the start of Worker.run_job (the job key read, the
  retry key counted and its time to live, the abort set);
- workers/queue/running.py: BatchingWorker.run_claimed against the rest of Worker.run_job, and the
  FINISH script against Worker.finish_job and finish_failed_job (the keys deleted or kept, the result
  and its time to live, the retry's score);
- the attributes both use: {", ".join(CLAIMING_USES)};
- workers/queue/enqueue.py: the ENQUEUE script against arq.connections.ArqRedis.enqueue_job (the job
  and result key prefixes, both checked for existence, the job key's time to live, the score, serialize_job);
- then run tests/component/test_queue_contract.py, test_enqueue.py and test_arq_worker.py."""


def test_the_installed_arq_is_the_pinned_minor_version() -> None:
    installed = version("arq")
    assert installed.startswith(f"{PINNED}."), f"arq {installed} is installed. {RECHECK}"


def test_pyproject_pins_that_minor_version() -> None:
    dependencies = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    major, minor = PINNED.split(".")
    pin = f"arq>={PINNED},<{major}.{int(minor) + 1}"
    assert pin in dependencies, f"pyproject.toml no longer says {pin!r}. {RECHECK}"


async def _noop(ctx: dict[str, object]) -> None:
    """A job for a worker that is built, never run."""


async def test_the_worker_still_has_what_claiming_worker_uses() -> None:
    # Built inside the test's event loop: `Worker` takes the running loop, and would leave one open.
    worker = Worker(functions=[func(_noop, name="noop")], handle_signals=False)
    missing = [name for name in CLAIMING_USES if not hasattr(worker, name)]
    assert not missing, f"arq.Worker has no {missing}. {RECHECK}"
