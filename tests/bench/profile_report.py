"""`python -m tests.bench.profile_report [--between FROM TO] STACKS [STACKS ...]`: where the worker's CPU
went, from the collapsed stacks `tests.bench.profile_worker` writes. A sample's stack is cut to the task
it ran (what is above the event loop's `Handle._run`: the worker's main loop runs inside ARQ's, which
would otherwise be on every stack), and the sample is charged to the category of its innermost frame
that has one (the JSON that SQLAlchemy encodes is JSON, the dataclass work of a JWT is the JWT), so the
shares add up to 100 %. Then the samples by job, and the functions with the most samples of their own.
`--between` keeps the samples of stamped stacks (`BENCH_PROFILE_STAMPED=1`) taken between two wall-clock
times, such as the outage's recovery that `tests.bench.reaction` prints when it profiles.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

# (category, substrings of a frame "qualname (file:line)"), most specific first.
CATEGORIES = [
    ("JWT signing (livekit-api AccessToken, PyJWT)", ["livekit/api/access_token.py", "/jwt/"]),
    ("logging", ["/logging/"]),
    ("protobuf (requests and replies)", ["google/protobuf", "/livekit/protocol/"]),
    ("room state to/from JSON-able dicts", ["workers/core/plain.py"]),
    ("JSON (json module)", ["/json/"]),
    ("SQL (SQLAlchemy, asyncpg / aiosqlite)", ["sqlalchemy/", "asyncpg/", "aiosqlite/", "sqlite3/"]),
    (
        "HTTP to LiveKit (aiohttp, livekit-api Twirp client)",
        ["aiohttp/", "livekit/api/", "yarl/", "multidict/"],
    ),
    ("Redis (ARQ, redis-py, Warden's queue)", ["redis/", "arq/", "workers/queue/"]),
    ("metrics (prometheus_client)", ["prometheus_client/"]),
    ("state machine (workers/core)", ["workers/core/"]),
]
JOBS = [
    ("on_deadline", "on_deadline ("),
    ("apply_webhook", "apply_webhook ("),
    ("report_to_incident", "report_to_incident ("),
    ("group commit flush", "GroupCommit._flush ("),
    ("sweep / crons", "workers/jobs/rooms/crons.py"),
    ("claiming and polling", "_poll_iteration ("),
]


def load(paths: list[str], between: tuple[float, float] | None = None) -> Counter[tuple[str, ...]]:
    """The stacks of the files; with `between` (stamped stacks, `BENCH_PROFILE_STAMPED=1`), only the
    samples taken in that span of wall-clock time."""
    stacks: Counter[tuple[str, ...]] = Counter()
    for path in paths:
        for line in Path(path).read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            frames = tuple(stack.split(";"))
            if frames[0].startswith("@"):
                if between is not None and not between[0] <= float(frames[0][1:]) <= between[1]:
                    continue
                frames = frames[1:]
            stacks[frames] += int(count)
    return stacks


EVENT_LOOP = "Handle._run ("


def task_of(stack: tuple[str, ...]) -> tuple[str, ...]:
    """The part of `stack` that runs the sampled task (below the event loop's last `Handle._run`)."""
    cut = max((i for i, frame in enumerate(stack) if frame.startswith(EVENT_LOOP)), default=-1)
    return stack[cut + 1 :]


def classify(stack: tuple[str, ...], table: list[tuple[str, list[str]]], rest: str) -> str:
    """The category of the innermost frame of `stack` that has one, else `rest`."""
    for frame in reversed(stack):
        for name, markers in table:
            if any(marker in frame for marker in markers):
                return name
    return rest


def report(stacks: Counter[tuple[str, ...]]) -> str:
    total = sum(stacks.values())
    by_category: Counter[str] = Counter()
    by_job: Counter[str] = Counter()
    own: Counter[str] = Counter()
    for stack, n in stacks.items():
        task = task_of(stack)
        by_category[classify(task, CATEGORIES, "other (event loop, Warden's own code)")] += n
        by_job[classify(task, [(name, [m]) for name, m in JOBS], "other (event loop, ARQ's jobs)")] += n
        own[stack[-1]] += n
    lines = [f"{total} samples", "", "| share | where |", "|---|---|"]
    lines += [f"| {100 * n / total:.1f} % | {name} |" for name, n in by_category.most_common()]
    lines += ["", "| share | job |", "|---|---|"]
    lines += [f"| {100 * n / total:.1f} % | {name} |" for name, n in by_job.most_common()]
    lines += ["", "| share | function (own samples) |", "|---|---|"]
    lines += [f"| {100 * n / total:.1f} % | {name} |" for name, n in own.most_common(25)]
    return "\n".join(lines)


def main() -> None:
    args = sys.argv[1:]
    if args[:1] == ["--between"]:
        print(report(load(args[3:], (float(args[1]), float(args[2])))))
    else:
        print(report(load(args)))


if __name__ == "__main__":
    main()
