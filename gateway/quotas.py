"""Per-caller limits at the gateway, so that one buyer or holder cannot take it all.

    QuotaExceeded (ResourceExhausted)   refused; ``retry_after_s`` says when trying again can help

A buyer may keep at most ``max_open_jobs`` jobs running and open at most
``jobs_per_minute`` new ones in any sliding minute; its unfinished set uploads
may hold at most ``max_upload_bytes``. Any caller, buyer or holder, may have at
most ``max_calls_per_caller`` calls running at once (``interceptors.CallLimiter``),
so that no one caller takes all of the server's. The party streams' own limits
(half-sent contributions, answers to tasks not given) live with the servicer
and are counted here too. Every refusal is counted under a fixed
reason (``REASONS``) and carries its retry hint in the message and in the
trailing metadata ``retry-after-s``, so clients can back off without parsing
prose. The limits live in memory: after a restart the open jobs are counted
again from the store (``Quotas.opened`` from the orchestrator's recovery) and
the minute's window starts empty.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable

from prometheus_client import CollectorRegistry, Counter

from datawharf.errors import ResourceExhausted

RETRY_AFTER_KEY = "retry-after-s"

# The only values the metric's reason label takes.
REASONS = frozenset({
    "open_jobs", "job_rate", "upload_bytes", "calls_in_flight", "spool_full", "contribution_bytes",
    "contributions_half_sent",
})


class QuotaExceeded(ResourceExhausted):
    """A per-caller or per-gateway limit refused the call; ``reason`` is one of ``REASONS``."""

    def __init__(self, message: str, *, reason: str, retry_after_s: float) -> None:
        self.retry_after_s = max(1, math.ceil(retry_after_s))
        super().__init__(f"{message}; retry in {self.retry_after_s} s")
        self.reason = reason

    def trailing_metadata(self) -> tuple[tuple[str, str], ...]:
        return ((RETRY_AFTER_KEY, str(self.retry_after_s)),)


@dataclass(frozen=True)
class QuotaSettings:
    """Limits per buyer; 0 switches one off (for benchmarks that measure the gateway unthrottled)."""

    max_open_jobs: int = 16
    jobs_per_minute: int = 60
    max_upload_bytes: int = 1 << 30  # a 2^22-item set of 32-byte points is 128 MiB; eight in parallel fit
    max_calls_per_caller: int = 128  # calls a caller may have running at once, streams included

    def __post_init__(self) -> None:
        for name in ("max_open_jobs", "jobs_per_minute", "max_upload_bytes", "max_calls_per_caller"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be 0 (no limit) or positive, got {getattr(self, name)}")


_WINDOW_S = 60.0
_MAX_TRACKED = 10_000  # buyers whose submissions of the last minute are kept


class Quotas:
    """The buyers' limits; ``on_refusal`` is told each refusal's reason (for metrics)."""

    def __init__(self, settings: QuotaSettings | None = None, *, clock: Callable[[], float] = time.monotonic,
                 on_refusal: Callable[[str], None] | None = None) -> None:
        self.settings = settings or QuotaSettings()
        self.clock = clock
        self.on_refusal = on_refusal or (lambda reason: None)
        self._open: dict[str, set[str]] = {}
        self._submitted: dict[str, deque[float]] = {}
        self._uploading: dict[str, int] = {}
        self._calls: dict[str, int] = {}

    def refuse(self, message: str, *, reason: str, retry_after_s: float) -> QuotaExceeded:
        self.on_refusal(reason)
        return QuotaExceeded(message, reason=reason, retry_after_s=retry_after_s)

    # ------------------------------------------------------------------ jobs
    def admit_job(self, buyer: str) -> None:
        """Raise QuotaExceeded unless ``buyer`` may open a new job now. Resubmitting a job under
        its request id is not new and must not come here; a job that was opened is ``submitted``."""
        s, now = self.settings, self.clock()
        if s.max_open_jobs and len(self._open.get(buyer, ())) >= s.max_open_jobs:
            raise self.refuse(
                f"{buyer} already has {s.max_open_jobs} jobs running, the most this gateway runs for one buyer; "
                # When a job ends cannot be known here: the hint is a polite polling interval.
                "wait for one to finish or cancel one", reason="open_jobs", retry_after_s=5)
        if s.jobs_per_minute:
            if len(self._submitted) > _MAX_TRACKED:
                self._forget_quiet(now)
            window = self._submitted.setdefault(buyer, deque())
            while window and window[0] <= now - _WINDOW_S:
                window.popleft()
            if len(window) >= s.jobs_per_minute:
                raise self.refuse(
                    f"{buyer} submitted {s.jobs_per_minute} jobs in the last minute, the most this gateway "
                    "accepts from one buyer", reason="job_rate", retry_after_s=window[0] + _WINDOW_S - now)

    def submitted(self, buyer: str) -> None:
        """``buyer`` opened a job: it counts in the minute's window. Refused submissions do not, so
        the refusal's count is the buyer's jobs."""
        if self.settings.jobs_per_minute:
            self._submitted.setdefault(buyer, deque()).append(self.clock())

    def _forget_quiet(self, now: float) -> None:
        # Names are certificates' (or, --insecure, whatever callers assert): forget those that
        # submitted nothing in the window, so that many names cannot grow this without end.
        for name in [n for n, w in self._submitted.items() if not w or w[-1] <= now - _WINDOW_S]:
            del self._submitted[name]

    def opened(self, buyer: str, job_id: str) -> None:
        """``job_id`` of ``buyer``'s is running (just submitted, or found running at a restart)."""
        self._open.setdefault(buyer, set()).add(job_id)

    def ended(self, buyer: str, job_id: str) -> None:
        jobs = self._open.get(buyer)
        if jobs is not None:
            jobs.discard(job_id)
            if not jobs:
                del self._open[buyer]

    def open_jobs(self, buyer: str) -> int:
        return len(self._open.get(buyer, ()))

    # --------------------------------------------------------------- uploads
    def upload(self, buyer: str, nbytes: int) -> None:
        """``nbytes`` more of an unfinished upload; raise QuotaExceeded past the buyer's limit."""
        limit = self.settings.max_upload_bytes
        have = self._uploading.get(buyer, 0)
        if limit and have + nbytes > limit:
            raise self.refuse(
                f"{buyer}'s unfinished uploads would hold more than {limit} bytes, the most this gateway holds "
                "for one buyer; finish or abandon the other uploads first", reason="upload_bytes",
                retry_after_s=10)
        self._uploading[buyer] = have + nbytes

    def upload_over(self, buyer: str, nbytes: int) -> None:
        """An upload of ``nbytes`` ended (complete or not): its bytes no longer count."""
        left = self._uploading.get(buyer, 0) - nbytes
        if left > 0:
            self._uploading[buyer] = left
        else:
            self._uploading.pop(buyer, None)

    # ----------------------------------------------------------------- calls
    def call_started(self, caller: str) -> None:
        """One more running call of ``caller``'s, or QuotaExceeded (the call is then not counted)."""
        limit = self.settings.max_calls_per_caller
        have = self._calls.get(caller, 0)
        if limit and have >= limit:
            raise self.refuse(f"{caller} has {limit} calls running at once, the most this gateway serves for "
                              "one caller; close idle streams", reason="calls_in_flight", retry_after_s=1)
        self._calls[caller] = have + 1

    def admit_call(self, caller: str) -> Callable[[], None]:
        """``call_started``, and the function that ends the call (for ``interceptors.CallLimiter``)."""
        self.call_started(caller)
        return lambda: self.call_ended(caller)

    def call_ended(self, caller: str) -> None:
        left = self._calls.get(caller, 0) - 1
        if left > 0:
            self._calls[caller] = left
        else:
            self._calls.pop(caller, None)


def refusal_counter(registry: CollectorRegistry) -> Callable[[str], None]:
    """``wharf_quota_refusals_total{reason}`` in the gateway's metrics registry; its ``inc`` by reason."""
    counter = Counter("wharf_quota_refusals", "Calls refused by a per-caller or gateway limit", ["reason"],
                      registry=registry)
    for reason in REASONS:  # every series exists from the start, at 0
        counter.labels(reason)

    def inc(reason: str) -> None:
        counter.labels(reason if reason in REASONS else "other").inc()

    return inc


__all__ = ["QuotaExceeded", "QuotaSettings", "Quotas", "REASONS", "RETRY_AFTER_KEY", "refusal_counter"]
