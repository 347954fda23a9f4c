"""Aggregation jobs: plan the holders to ask, collect ciphertexts, combine.

A job completes as soon as every task has an answer (contributed, refused,
failed, lost) and at least ``min_parties`` contributed; it fails as soon as
that threshold can no longer be met, or at its deadline. A task whose holder
disconnected is LOST but resent if the holder returns before the deadline.
Contributions are in the store before they count, so a restarted gateway
resumes without losing or double-counting one.
"""

from __future__ import annotations

import asyncio
import logging

from datawharf.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from datawharf import roles
from datawharf.filters import FilterTypeError, check_types
from datawharf.model import AggregateJob, ColumnKind
from datawharf.serde import aggregate_from_proto, aggregate_to_proto, contribution_from_proto, result_to_proto
from datawharf.states import OPEN_TASK_STATES, JobState, TaskState
from datawharf.v1 import common_pb2
from gateway.catalog import CatalogEntry
from gateway.jobs.book import JobBook
from gateway.store import JobRow, TaskRow
from protocols import aggregate as agg
from protocols.figures import Statistic
from protocols.schemes import SchemeError

log = logging.getLogger("datawharf.gateway")

KIND = "aggregate"
DEFAULT_TIMEOUT_S = 120


def plan(spec: AggregateJob, entry: CatalogEntry | None, parties: list[str]) -> list[str]:
    """The holders to ask, after checking the spec against what they list. Pure."""
    try:
        agg.encryptor(spec.encryption)
    except SchemeError as exc:
        raise InvalidArgument(f"encryption parameters refused: {exc}", argument="key_bits") from None
    if entry is None:
        raise NotFound(f"dataset {spec.dataset!r} is not listed by any holder; the catalog shows what is",
                       argument="dataset")
    if parties:
        unknown = [p for p in parties if p not in entry.holders]
        if unknown:
            raise NotFound(
                f"{', '.join(map(repr, unknown))} do(es) not hold dataset {spec.dataset!r}; "
                f"its holders are {', '.join(entry.holders)}", argument="parties")
        targets = sorted(set(parties))
    else:
        targets = list(entry.holders_online)
        if not targets:
            raise FailedPrecondition(
                f"no holder of dataset {spec.dataset!r} is online (holders: {', '.join(entry.holders)}); "
                "retry later, or name them in parties to wait for them", argument="parties")
    # A link to another exchange answers with the sum of several holders: each counts.
    behind = entry.contributors(targets)
    if spec.encryption.max_contributors < behind:
        raise FailedPrecondition(
            f"the job's encoding leaves headroom for {spec.encryption.max_contributors} holder(s) "
            f"but {behind} would contribute; resubmit with a larger max_contributors")
    for party in targets:
        _check_listing(spec, entry, party)
    return targets


def _check_listing(spec: AggregateJob, entry: CatalogEntry, party: str) -> None:
    listing = entry.listings[party]
    col = listing.column(spec.column)
    if col is None:
        raise NotFound(f"column {spec.column!r} is not in dataset {spec.dataset!r} at {party} "
                       f"(columns: {', '.join(c.name for c in listing.columns)})", argument="column")
    stat = spec.statistic
    if not col.kind.numeric and stat is not Statistic.COUNT:
        raise InvalidArgument(f"column {spec.column!r} holds text; {stat.value} needs a numeric column",
                              argument="column")
    if col.kind.numeric and stat is not Statistic.COUNT and col.dimension != spec.dimension:
        raise InvalidArgument(f"column {spec.column!r} has {col.dimension} value(s) per row at {party}; "
                              f"the job says {spec.dimension}", argument="column")
    if stat is Statistic.HISTOGRAM and col.kind is ColumnKind.VECTOR:
        raise InvalidArgument(f"a histogram needs a scalar column; {spec.column!r} is a vector", argument="column")
    if spec.group_by is not None:
        gcol = listing.column(spec.group_by.column)
        if gcol is None:
            raise NotFound(f"group-by column {spec.group_by.column!r} is not in dataset {spec.dataset!r} "
                           f"at {party}", argument="group_by")
        if gcol.categories != spec.group_by.categories:
            raise InvalidArgument(
                f"group-by column {spec.group_by.column!r} at {party} declares categories "
                f"{list(gcol.categories) or 'none'}; the job uses {list(spec.group_by.categories)}",
                argument="group_by")
    if col.decimals > spec.places:
        raise InvalidArgument(f"column {spec.column!r} has {col.decimals} decimal places at {party}; "
                              f"the job asks for {spec.places}", argument="column")
    for cond in spec.where:
        fcol = listing.column(cond.column)
        if fcol is None:
            raise NotFound(f"filter column {cond.column!r} is not in dataset {spec.dataset!r} at {party}",
                           argument="where")
        try:
            check_types(cond, text=fcol.kind is ColumnKind.STRING, vector=fcol.kind is ColumnKind.VECTOR)
        except FilterTypeError as exc:
            raise InvalidArgument(str(exc), argument="where") from None
    try:
        roles.check_job(spec, listing.column, party)
    except roles.RoleError as exc:
        raise PermissionDenied(str(exc)) from None


class AggregateJobs:
    """The aggregation kind: submission, tasks, contributions, the combined total."""

    def __init__(self, book: JobBook) -> None:
        self.book = book
        self._encryptors: dict[str, agg.Encryptor] = {}
        self._finishing: set[str] = set()

    def decode(self, spec: bytes) -> AggregateJob:
        return aggregate_from_proto(common_pb2.AggregateSpec.FromString(spec))

    async def submit(self, buyer: str, request_id: str, spec: AggregateJob, *, parties: list[str],
                     min_parties: int, timeout_s: int, signed: bytes = b"") -> JobRow:
        book = self.book
        spec_bytes = aggregate_to_proto(spec).SerializeToString(deterministic=True)
        existing = book.existing(buyer, request_id, spec_bytes, timeout_s)
        if existing is not None:
            return existing
        targets = plan(spec, book.catalog().get(spec.dataset), parties)
        min_parties = min_parties or 1
        orgs = {book.organisation(p) for p in targets}
        if min_parties > len(orgs):
            raise FailedPrecondition(
                f"min_parties {min_parties} cannot be met: only {len(orgs)} organisation(s) would be asked "
                f"({', '.join(targets)})", argument="min_parties")
        need = max(book.holder_minimum(p, spec.dataset) for p in targets)
        if need > len(orgs):
            strict = [p for p in targets if book.holder_minimum(p, spec.dataset) == need]
            raise FailedPrecondition(
                f"{', '.join(strict)} require(s) at least {need} organisations to contribute; only {len(orgs)} "
                f"would be asked", argument="min_parties")
        job = book.open_job(
            buyer=buyer, request_id=request_id, kind=KIND, backend=spec.encryption.backend.value, spec=spec,
            spec_bytes=spec_bytes, state=JobState.PENDING, min_parties=min_parties,
            timeout_s=timeout_s or DEFAULT_TIMEOUT_S, parties=targets,
            detail=f"{spec.statistic.value} of {spec.column} over {targets}", signed=signed)
        for task in book.store.tasks(job.job_id):
            self.dispatch(job, task.task_id, task.party)
        return job

    def dispatch(self, job: JobRow, task_id: str, party: str) -> None:
        spec = self.book.spec(job)
        offer = self.book.offer(job, task_id, min_parties=job.min_parties, spec=spec)
        if self.book.dispatcher.send(party, offer):
            self.book.mark_dispatched(job, task_id)

    def next_stage(self, job_id: str) -> str:
        return ""

    async def contribution(self, job: JobRow, party: str, task_id: str, payload: bytes) -> None:
        book = self.book
        try:
            spec = book.spec(job)
            assert isinstance(spec, AggregateJob)
            enc = self._encryptors.get(job.job_id)
            if enc is None:
                enc = self._encryptors[job.job_id] = agg.encryptor(spec.encryption)
            contribution = contribution_from_proto(common_pb2.EncryptedFigures.FromString(payload))
            await asyncio.to_thread(agg.check_contribution, spec.request, contribution, enc)
        except Exception as exc:  # any malformed payload is the holder's fault, not the job's
            book.invalid(job, task_id, party, f"invalid contribution: {exc}")
        else:
            if book.store.add_contribution(task_id, job.job_id, party, payload):
                book.contributed(job, task_id, party, detail=f"bytes={len(payload)}", nbytes=len(payload))
                if job.state in (JobState.PENDING, JobState.DISPATCHED):
                    book.store.set_job_state(job.job_id, JobState.COLLECTING)
        book.notify(job.job_id)

    async def evaluate(self, job: JobRow, tasks: list[TaskRow], *, at_deadline: bool) -> None:
        if job.job_id in self._finishing:
            return
        contributed = [t for t in tasks if t.state == TaskState.CONTRIBUTED]
        still_open = [t for t in tasks if t.state in OPEN_TASK_STATES]
        waiting = [t for t in still_open if t.state != TaskState.LOST]
        dataset = self.book.spec(job).dataset
        # Organisations, not certificates, count; and each contributor's own minimum counts too.
        have, need = self.book.quorum(job, dataset, [t.party for t in contributed])
        could, _ = self.book.quorum(job, dataset, [t.party for t in contributed + still_open])
        if have >= need and (not waiting or at_deadline):
            if at_deadline:
                self.book.expire_open(still_open)
            await self.combine(job)
        elif could < job.min_parties or at_deadline or (not still_open and have < need):
            if at_deadline:
                self.book.expire_open(still_open)
            self.book.fail(job, self._shortfall(job, at_deadline))

    def _shortfall(self, job: JobRow, at_deadline: bool) -> str:
        tasks = self.book.store.tasks(job.job_id)
        contributed = [t.party for t in tasks if t.state == TaskState.CONTRIBUTED]
        n = len(contributed)
        have, need = self.book.quorum(job, self.book.spec(job).dataset, contributed)
        words = {TaskState.DISPATCHED: "had not answered yet", TaskState.PENDING: "was offline",
                 TaskState.LOST: "disconnected"}
        why = "; ".join(
            f"{t.party} {words.get(TaskState(t.state), t.state.lower())}" + (f": {t.reason}" if t.reason else "")
            for t in tasks
            if t.state != TaskState.CONTRIBUTED
        )
        head = "deadline passed with" if at_deadline else "cannot succeed:"
        orgs = f" ({have} organisation(s))" if have != n else ""
        rule = f"{need} organisations required" if need != job.min_parties or have != n \
            else f"{job.min_parties} required"
        if need > job.min_parties:
            rule += " by the contributing holders' own min_parties"
        return f"{head} {n} of {len(tasks)} holder(s) contributed{orgs}, {rule} — {why or 'none left to ask'}"

    async def combine(self, job: JobRow) -> None:
        book = self.book
        self._finishing.add(job.job_id)
        try:
            book.store.set_job_state(job.job_id, JobState.AGGREGATING)
            book.notify(job.job_id)
            spec = book.spec(job)
            assert isinstance(spec, AggregateJob)
            stored = book.store.contributions(job.job_id)
            contributions = {
                party: contribution_from_proto(common_pb2.EncryptedFigures.FromString(p)) for party, p in stored
            }
            total = await asyncio.to_thread(agg.combine, spec.request, contributions)
            result = result_to_proto(job.job_id, total, [party for party, _ in stored])
            book.finish(job, result.SerializeToString(), f"{len(stored)} contribution(s)")
        except Exception as exc:
            log.exception("job %s: aggregation failed", job.job_id)
            book.fail(job, f"aggregation failed at the gateway: {exc}")
        finally:
            self._finishing.discard(job.job_id)
            self._encryptors.pop(job.job_id, None)

    async def recover(self, job: JobRow) -> None:
        if job.state == JobState.AGGREGATING:
            await self.combine(job)

    def forget(self, job_id: str) -> None:
        self._encryptors.pop(job_id, None)


__all__ = ["AggregateJobs", "KIND", "plan"]

