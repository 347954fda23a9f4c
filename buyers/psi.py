"""The buyer's side of PSI jobs (``Client.psi`` calls ``run_psi``).

The buyer's rounds run here: its IDs are normalised, hashed and blinded
locally (on every core), only blinded points go up, and the intersection or
the sums are finished locally.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import math
import os
import uuid
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import grpc
import numpy as np
import numpy.typing as npt

from google.protobuf.message import DecodeError
from typing import Callable, Iterator, Sequence

from buyers.connection import Connection
from buyers.psi_files import BuyerSet, scratch
from datawharf.chunking import ChunkError, Piece, item_chunk_bytes
from datawharf.errors import from_rpc_error
from datawharf.chunking import Assembler, split_items
from datawharf.errors import AlreadyExists, FailedPrecondition, InvalidArgument, JobFailed, WharfError
from datawharf.messages import StagePiece
from datawharf.model import JobView, PsiJob
from datawharf.serde import job_from_proto, piece_to_proto, psi_to_proto
from datawharf.pki import SignatureError
from datawharf.signing import check_stages, items_digest, verify_receipt
from datawharf.states import JobState
from datawharf.v1 import buyer_pb2, common_pb2
from protocols import dp, oprf, psi, psi_multi, psi_sum
from protocols.psi_stages import (
    MAX_NOISE_BYTES,
    MAX_SEALED_BYTES,
    MAX_SET,
    MAX_W,
    NoiseDeclaration,
    PsiMode,
    Stage,
    for_holder,
    item_bytes,
    unpack_sums,
)
from protocols.psi_stages import split_items as split_stage


@dataclass(frozen=True)
class PsiNoise:
    """The noise a holder under differential privacy declared (signed) for a PSI result.

    ``size`` and ``totals`` of the answer are noisy: each carries discrete
    Gaussian noise of the σ given here, and its 95 % interval is given too.
    ``set_size_sd`` is the noise on how many rows the holder showed (its set
    size is hidden up to that)."""

    rho: float                              # the privacy loss this job cost the buyer's budget
    size_sd: float                          # σ of the size, in IDs (0: exact)
    size_interval: dp.Interval | None
    set_size_sd: float
    sum_sd: dict[str, float]                # σ of each total, in the column's units
    intervals: dict[str, dp.Interval]       # 95 % interval of each total
    remaining: float                        # what remains of the buyer's budget for the dataset
    renews_at: float                        # unix seconds


@dataclass(frozen=True)
class PsiAnswer:
    job_id: str
    mode: str
    size: int
    matched: tuple[str, ...]  # the buyer's own input IDs that matched (empty when cardinality-only)
    totals: dict[str, Fraction]  # psi-sum: per value column
    holder: str  # the holder, or in a multi-holder job the holders joined by ", "
    view: JobView
    noise: PsiNoise | None = None  # None: the holder answered exactly
    holders: tuple[str, ...] = ()  # a multi-holder job's holders; its IDs are those at ``at_least`` of them
    at_least: int = 0
    # IDs given as a file: the rows (0-based lines, or a Parquet file's rows) whose ID matched, ascending,
    # in place of ``matched`` (millions of IDs are not returned as Python strings).
    matched_rows: npt.NDArray[np.int64] | None = None


Progress = Callable[[str, int, int], None]
log = logging.getLogger("datawharf.buyer")


def _pool_mapper() -> tuple[ProcessPoolExecutor, psi.Mapper]:
    import multiprocessing
    import os

    pool = ProcessPoolExecutor(max_workers=os.cpu_count() or 1, mp_context=multiprocessing.get_context("spawn"))
    return pool, psi.PoolMapper(pool)


def _progress_mapper(mapper: psi.Mapper, stage: str, total: int, progress: Progress | None) -> psi.Mapper:
    def run(fn, chunks):  # type: ignore[no-untyped-def]
        results = iter(mapper(fn, chunks))
        try:
            first = next(results, None)
        except BrokenProcessPool:
            # Worker processes re-import the caller's main module; a script without an
            # `if __name__ == "__main__":` guard breaks them. Carry on in this process.
            log.warning("PSI worker processes failed to start (guard your script's entry point with "
                        "`if __name__ == \"__main__\":`); continuing on one core")
            results = map(fn, chunks)
            first = next(results, None)
        done = 0
        for part in itertools.chain([] if first is None else [first], results):
            done += len(part)
            if progress:
                progress(stage, done, total)
            yield part
    return run


def _send_stage(conn: Connection, job_id: str, stage: Stage, name: str,
                requests: Callable[[], Iterator[buyer_pb2.SetUpload]]) -> JobView:
    """One stage's upload stream, ``requests()`` afresh on each attempt."""
    tried = False

    def attempt() -> JobView:
        # Sent again from chunk 0 if the gateway went away mid-stage (it forgets a half-received stage),
        # unless the stage got through before the connection broke.
        nonlocal tried
        if tried:
            view = conn.status(job_id)
            if view.state != JobState.AWAITING_BUYER or view.next_stage != str(stage):
                return view  # the job moved on: the gateway had the stage
        tried = True
        try:
            return job_from_proto(conn.call(conn.stub.UploadSet, requests(), timeout=3600))
        except (AlreadyExists, FailedPrecondition, InvalidArgument) as exc:
            # gRPC itself sends a stream again when the gateway went away before answering: a copy that got
            # through first is refused as already received, or as the wrong stage once the job has moved on
            # (or ended: the caller's watch says how).
            view = conn.status(job_id)
            if not isinstance(exc, AlreadyExists) and view.state == JobState.AWAITING_BUYER \
                    and view.next_stage == str(stage):
                raise
            if isinstance(exc, InvalidArgument) and view.final:
                raise  # the set itself was refused (and the job failed for it), not a resent copy
            return view

    return conn.retried(attempt, f"uploading stage {name} of job {job_id}")


def _upload(conn: Connection, job_id: str, stage: Stage, items: Sequence[bytes], progress: Progress | None,
            holder: str = "") -> JobView:
    """Stage ``stage`` up to the gateway (in a multi-holder job, the buyer's stage for ``holder``)."""
    item = item_bytes(stage)
    name = for_holder(stage, holder) if holder else str(stage)
    pieces = split_items(b"".join(items), item)

    def gen() -> Iterator[buyer_pb2.SetUpload]:
        sent = 0
        for seq, piece in enumerate(pieces):
            sent += len(piece) // item
            if progress:
                progress(f"sending {stage}", sent, len(items))
            yield buyer_pb2.SetUpload(job_id=job_id if seq == 0 else "", chunk=piece_to_proto(
                StagePiece(name, seq, piece, seq == len(pieces) - 1)))

    return _send_stage(conn, job_id, stage, name, gen)


def _download(conn: Connection, job_id: str, stage: Stage, max_items: int, holder: str = "") -> list[bytes]:
    """A stage the gateway holds for the buyer (in a multi-holder job, ``holder``'s), reassembled under a
    cap of ``max_items``."""
    name = for_holder(stage, holder) if holder else str(stage)
    data = conn.retried(lambda: conn.download(  # from chunk 0 again if the gateway went away mid-stage
        lambda: conn.stub.DownloadSet(buyer_pb2.DownloadSetRequest(job_id=job_id, stage=name),
                                      metadata=conn.metadata, timeout=3600),
        Assembler(max_items * item_bytes(stage), item=item_bytes(stage)), f"stage {stage}", "run the job again"),
        f"downloading stage {name} of job {job_id}")
    return split_stage(data, stage)


def _await_stage(conn: Connection, job_id: str, timeout_s: float) -> JobView:
    for view in conn.watch(job_id, timeout_s=timeout_s):
        if view.final or (view.state == JobState.AWAITING_BUYER and view.next_stage):
            if view.state in (JobState.FAILED, JobState.CANCELLED):
                raise JobFailed(view)
            return view
    raise WharfError(f"job {job_id} ended its watch without a state")


def run_psi(
    conn: Connection,
    dataset: str,
    key_column: str,
    ids: Sequence[str],
    *,
    mode: str = "intersection",
    cardinality_only: bool = False,
    value_columns: Sequence[str] = (),
    party: str | None = None,
    timeout_s: int = 600,
    request_id: str | None = None,
    progress: Progress | None = None,
    parallel: bool = True,
    rho: float | None = None,
    parties: Sequence[str] = (),
    at_least: int | None = None,
) -> PsiAnswer:
    """The buyer's rounds of one PSI job (see ``Client.psi`` for the arguments; ``rho`` is the privacy
    spend at a holder under differential privacy, None for its default)."""
    holders = tuple(parties)
    if holders or at_least is not None:
        _check_multi(holders, at_least, party, mode)
    if rho is not None and not (0 < rho <= 100 and math.isfinite(rho)):
        raise InvalidArgument(f"rho must be a positive privacy spend (at most 100), got {rho}", argument="rho")
    try:
        psi_mode = PsiMode(mode)
    except ValueError:
        raise InvalidArgument(f"unknown PSI mode {mode!r}; use intersection, sum or unbalanced",
                              argument="mode") from None
    item = conn.item(dataset)
    if not item.column(key_column).join_key:
        raise InvalidArgument(f"{key_column!r} is not a join key of {dataset!r}", argument="key_column")
    decimals = {}
    for v in value_columns:
        col = item.column(v)
        if not col.psi_value:
            raise InvalidArgument(f"{v!r} is not a value column of {dataset!r}", argument="value_columns")
        decimals[v] = col.decimals
    if isinstance(ids, os.PathLike):
        if psi_mode is not PsiMode.INTERSECTION or holders:
            raise InvalidArgument("an ID file runs as an intersection with one holder; pass the IDs as a list for "
                                  "other modes", argument="ids")
        return _run_file(conn, dataset, key_column, Path(ids), cardinality_only=cardinality_only, party=party,
                         timeout_s=timeout_s, request_id=request_id, progress=progress, parallel=parallel, rho=rho)
    role: psi.Buyer | oprf.Buyer
    try:
        if psi_mode is PsiMode.SUM:
            role = psi_sum.Buyer(ids)
        elif psi_mode is PsiMode.UNBALANCED:
            role = oprf.Buyer(ids)
        else:
            role = psi.Buyer(ids)
    except psi.PsiError as exc:
        raise InvalidArgument(f"ids: {exc}", argument="ids") from None
    if not role.unique:
        raise InvalidArgument("the ID list is empty", argument="ids")
    box_key = role.box.public if isinstance(role, psi_sum.Buyer) else b""
    # Balanced modes: A ends with the buyer's commitment to its scalar, counted in the set's size.
    extra = 0 if psi_mode is PsiMode.UNBALANCED else psi.COMMITMENT_POINTS
    if len(role.unique) > MAX_SET:
        raise InvalidArgument(f"{len(role.unique)} distinct IDs; a PSI job takes at most {MAX_SET}", argument="ids")
    spec = PsiJob(dataset, key_column, psi_mode, cardinality_only, tuple(value_columns), box_key,
                  len(role.unique) + extra, rho or 0.0, holders, at_least or 0)
    if holders:
        assert not isinstance(role, oprf.Buyer)
        return _run_multi(conn, spec, role, list(ids), decimals, timeout_s=timeout_s, request_id=request_id,
                          progress=progress, parallel=parallel)
    pool: ProcessPoolExecutor | None = None
    mapper: psi.Mapper = psi._serial_map
    if parallel and psi_mode is not PsiMode.UNBALANCED:
        pool, mapper = _pool_mapper()
    sealed = b""
    seen: dict[str, bytes] = {}  # digests of the holder's stages as downloaded, checked against its receipt
    try:
        total = len(role.unique)
        # Blinded before submitting: the signed job carries the set's digest, so the holder can
        # tell the set the gateway relays is this one.
        if isinstance(role, oprf.Buyer):
            a = role.blinded()
        else:
            a = role.blinded(_progress_mapper(mapper, "blinding", total, progress)) + role.commitment()
        submitted, body_digest = conn.submit_job(
            request_id or uuid.uuid4().hex, parties=[party] if party else [], min_parties=1, timeout_s=timeout_s,
            psi=psi_to_proto(spec), set_digest=items_digest(a))
        job_id = submitted.job_id
        _upload(conn, job_id, Stage.A, a, progress)
        view = _await_stage(conn, job_id, timeout_s + 30)
        if view.final:
            raise WharfError(f"job {job_id} ended before the buyer's second round")
        receipt = _early_receipt(conn, job_id, body_digest, view)
        try:
            declared = b"".join(_download(conn, job_id, Stage.P, MAX_NOISE_BYTES))
            seen[Stage.P] = items_digest([declared])
        except FailedPrecondition:
            declared = b""  # a holder that declares no noise (checked against its receipt below)
        if isinstance(role, oprf.Buyer):
            evaluated = _download(conn, job_id, Stage.E, total)
            seen[Stage.E] = items_digest(evaluated)
            if receipt is not None:
                check_stages(receipt, {str(k): v for k, v in seen.items()})
            _upload(conn, job_id, Stage.Q, role.tags(evaluated), progress)
        else:
            w = _download(conn, job_id, Stage.W, MAX_W)
            seen[Stage.W] = items_digest(w)
            if isinstance(role, psi_sum.Buyer):
                sealed = b"".join(_download(conn, job_id, Stage.S, MAX_SEALED_BYTES))
                seen[Stage.S] = items_digest([sealed])
            if receipt is not None:  # before re-blinding: never multiply points the holder did not sign
                check_stages(receipt, {str(k): v for k, v in seen.items()})
            z = role.reblind(w, _progress_mapper(mapper, "re-blinding", len(w), progress))
            _upload(conn, job_id, Stage.Z, z, progress)
    finally:
        if pool is not None:
            pool.shutdown()
    view = conn.wait(job_id, timeout_s=timeout_s + 30)
    if view.state != JobState.DONE:
        raise JobFailed(view)
    result = conn.fetch_result(job_id)
    conn.check_contributors(result, body_digest, 1)
    if conn.trust is not None and body_digest:
        receipt = next(x for x in result.receipts if x.party == result.contributors[0])
        check_stages(receipt, {str(k): v for k, v in seen.items()})
        if Stage.P not in seen and any(s.stage == Stage.P for s in receipt.stages):
            raise WharfError(f"{receipt.party} declared the noise of job {job_id} but the gateway did not pass "
                             "the declaration on; the result cannot be read without it")
    r = result.psi
    matched: tuple[str, ...] = ()
    totals: dict[str, Fraction] = {}
    if isinstance(role, psi_sum.Buyer):
        sums = psi_sum.SumResult(tuple(r.positions), r.size, tuple(unpack_sums(r.masked_sums)))
        raw = role.totals(sums, sealed, job_id.encode(), r.holder_rows)
        totals = {c: Fraction(t, 10 ** decimals[c]) for c, t in zip(value_columns, raw)}
    elif r.positions:
        ids_list = list(ids)
        hits = sorted(row for n in role.matched(r.positions) for row in role.rows[n])
        matched = tuple(ids_list[row] for row in hits)  # in the order of the buyer's input
    return PsiAnswer(job_id, psi_mode.value, r.size, matched, totals, result.contributors[0], view,
                     _noise(declared, r.size, totals) if declared else None)


def _early_receipt(conn: Connection, job_id: str, body_digest: bytes, view: JobView, holder: str = ""
                   ) -> common_pb2.ContributionReceipt | None:
    """The holder's signed receipt for its answer (in a multi-holder job, ``holder``'s), checked, before the
    buyer's second round (None when the connection has no trust store, as on an insecure loopback)."""
    if conn.trust is None or not body_digest:
        return None
    raw = b"".join(_download(conn, job_id, Stage.R, MAX_NOISE_BYTES, holder))
    try:
        receipt = common_pb2.ContributionReceipt.FromString(raw)
    except DecodeError:
        raise SignatureError(f"the holder's receipt for job {job_id} as relayed is unreadable") from None
    signer = verify_receipt(receipt, conn.trust, body_digest)
    expected = {t.party for t in view.tasks} if not holder else {holder}
    if signer.name not in expected:
        raise SignatureError(f"the receipt for job {job_id} is signed by {signer.name}, not by the job's holder "
                             f"({', '.join(sorted(expected))})")
    return receipt


def _noise(declared: bytes, size: int, totals: dict[str, Fraction]) -> PsiNoise | None:
    try:
        d = NoiseDeclaration.unpack(declared)
    except ValueError as exc:
        raise WharfError(f"the holder's noise declaration is unreadable: {exc}") from None
    return _noise_of(d, size, totals)


def _noise_of(d: NoiseDeclaration, size: int, totals: dict[str, Fraction]) -> PsiNoise | None:
    if d.exact:
        return None
    sds = dict(d.sum_sd)
    if set(sds) != set(totals):
        raise WharfError(f"the holder declared noise for columns {sorted(sds)}, the job sums {sorted(totals)}")

    def around(value: float, sd: float) -> dp.Interval:
        return dp.Interval(sd, value - dp.Z95 * sd, value + dp.Z95 * sd)

    return PsiNoise(d.rho, d.size_sd, around(size, d.size_sd) if d.size_sd else None, d.set_size_sd, sds,
                    {c: around(float(totals[c]), sd) for c, sd in sds.items()}, d.remaining, d.renews_at)


# ------------------------------------------------------------------ multi-holder jobs (protocols.psi_multi)
def _check_multi(holders: tuple[str, ...], at_least: int | None, party: str | None, mode: str) -> None:
    if party:
        raise InvalidArgument("name one holder as party, or several as parties, not both", argument="party")
    if mode == PsiMode.UNBALANCED:
        raise InvalidArgument("unbalanced PSI runs against one holder; name one as party", argument="parties")
    if at_least is not None and at_least < 1:
        raise InvalidArgument(f"at_least must be at least 1 (an ID at no holder is no match), not {at_least}",
                              argument="at_least")
    try:
        psi_multi.check_holders(holders, at_least or 0)
    except psi_multi.HolderError as exc:
        raise InvalidArgument(str(exc), argument="parties" if exc.argument == "holders" else exc.argument) from None


def _combined(declared: dict[str, bytes]) -> NoiseDeclaration | None:
    """The holders' noise declarations as one: their noises add up (variances do), so σ is the root of the
    sum of squares; the spend and what remains are the largest and the smallest among them."""
    decls = []
    for holder, raw in declared.items():
        try:
            decls.append(NoiseDeclaration.unpack(raw))
        except ValueError as exc:
            raise WharfError(f"{holder}'s noise declaration is unreadable: {exc}") from None
    noisy = [d for d in decls if not d.exact]
    if not noisy:
        return None
    columns = sorted({c for d in noisy for c, _ in d.sum_sd})
    return NoiseDeclaration(
        False, max(d.rho for d in noisy), math.sqrt(sum(d.size_sd ** 2 for d in noisy)),
        max(d.set_size_sd for d in noisy),
        tuple((c, math.sqrt(sum(dict(d.sum_sd).get(c, 0.0) ** 2 for d in noisy))) for c in columns),
        min(d.remaining for d in noisy), min(d.renews_at for d in noisy))


def _run_multi(conn: Connection, spec: PsiJob, role: psi.Buyer, ids: list[str], decimals: dict[str, int], *,
               timeout_s: int, request_id: str | None, progress: Progress | None, parallel: bool) -> PsiAnswer:
    """A multi-holder job: stage A once, then per holder its receipt, W (and S, P) and the buyer's Z."""
    holders = spec.holders
    pool: ProcessPoolExecutor | None = None
    mapper: psi.Mapper = psi._serial_map
    if parallel:
        pool, mapper = _pool_mapper()
    seen: dict[str, dict[str, bytes]] = {h: {} for h in holders}
    declared: dict[str, bytes] = {}
    sealed: dict[str, bytes] = {}
    try:
        a = role.blinded(_progress_mapper(mapper, "blinding", len(role.unique), progress)) + role.commitment()
        submitted, body_digest = conn.submit_job(
            request_id or uuid.uuid4().hex, parties=list(holders), min_parties=1, timeout_s=timeout_s,
            psi=psi_to_proto(spec), set_digest=items_digest(a))
        job_id = submitted.job_id
        _upload(conn, job_id, Stage.A, a, progress)
        view = _await_stage(conn, job_id, timeout_s + 30)
        if view.final:
            raise WharfError(f"job {job_id} ended before the buyer's second round")
        def fetch(h: str) -> tuple[common_pb2.ContributionReceipt | None, list[bytes]]:
            """Holder ``h``'s receipt (checked) and stages, their digests noted."""
            receipt = _early_receipt(conn, job_id, body_digest, view, holder=h)
            try:
                declared[h] = b"".join(_download(conn, job_id, Stage.P, MAX_NOISE_BYTES, h))
                seen[h][Stage.P] = items_digest([declared[h]])
            except FailedPrecondition:
                pass  # a holder that declares no noise (checked against its receipt below)
            w = _download(conn, job_id, Stage.W, MAX_W, h)
            seen[h][Stage.W] = items_digest(w)
            if isinstance(role, psi_sum.Buyer):
                sealed[h] = b"".join(_download(conn, job_id, Stage.S, MAX_SEALED_BYTES, h))
                seen[h][Stage.S] = items_digest([sealed[h]])
            return receipt, w

        # The cores re-blind one holder's W while the next one's stages come down and the last Z goes
        # up (one upload at a time: the gateway bounds what a buyer's unfinished uploads hold).
        with ThreadPoolExecutor(1) as down, ThreadPoolExecutor(1) as up:
            coming = down.submit(fetch, holders[0])
            sent: list[Future[JobView]] = []
            for i, h in enumerate(holders):
                receipt, w = coming.result()
                if i + 1 < len(holders):
                    coming = down.submit(fetch, holders[i + 1])
                if receipt is not None:  # before re-blinding: never multiply points the holder did not sign
                    check_stages(receipt, {str(k): v for k, v in seen[h].items()})
                z = role.reblind(w, _progress_mapper(mapper, f"re-blinding for {h}", len(w), progress))
                sent.append(up.submit(_upload, conn, job_id, Stage.Z, z, progress, h))
            for f in sent:
                f.result()
    finally:
        if pool is not None:
            pool.shutdown()
    view = conn.wait(job_id, timeout_s=timeout_s + 30)
    if view.state != JobState.DONE:
        raise JobFailed(view)
    result = conn.fetch_result(job_id)
    if sorted(result.contributors) != sorted(holders):
        raise WharfError(f"job {job_id} names contributors {', '.join(result.contributors)}; it asked "
                         f"{', '.join(holders)}")
    conn.check_contributors(result, body_digest, 1)
    if conn.trust is not None and body_digest:
        for h in holders:
            receipt = next(x for x in result.receipts if x.party == h)
            check_stages(receipt, {str(k): v for k, v in seen[h].items()})
            if Stage.P not in seen[h] and any(s.stage == Stage.P for s in receipt.stages):
                raise WharfError(f"{h} declared the noise of job {job_id} but the gateway did not pass the "
                                 "declaration on; the result cannot be read without it")
    r = result.psi
    matched: tuple[str, ...] = ()
    totals: dict[str, Fraction] = {}
    if isinstance(role, psi_sum.Buyer):
        parts = {p.party: p for p in r.holder_sums}
        if sorted(parts) != sorted(holders):
            raise WharfError(f"job {job_id}'s sums cover {', '.join(sorted(parts))}, not {', '.join(holders)}")
        raw = psi_multi.totals(role, [
            (psi_sum.SumResult(tuple(parts[h].positions), r.size, tuple(unpack_sums(parts[h].masked_sums))),
             sealed[h], parts[h].holder_rows) for h in holders], job_id.encode())
        totals = {c: Fraction(t, 10 ** decimals[c]) for c, t in zip(spec.value_columns, raw)}
    elif r.positions:
        hits = sorted(row for n in role.matched(r.positions) for row in role.rows[n])
        matched = tuple(ids[row] for row in hits)
    combined = _combined(declared)
    noise = _noise_of(combined, r.size, totals) if combined is not None else None
    return PsiAnswer(job_id, spec.mode.value, r.size, matched, totals, ", ".join(holders), view, noise,
                     holders=holders, at_least=spec.threshold)


# ------------------------------------------------------------------ an ID file, streamed (buyers.psi_files)
def _upload_file(conn: Connection, job_id: str, stage: Stage, path: Path, progress: Progress | None) -> JobView:
    """Stage ``stage`` up from a file, chunk by chunk (retried from chunk 0 as ``_upload`` is)."""
    item = item_bytes(stage)
    size = path.stat().st_size
    step = item_chunk_bytes(item)

    def gen() -> Iterator[buyer_pb2.SetUpload]:
        with open(path, "rb") as f:
            seq, sent = 0, 0
            while True:
                piece = f.read(step)
                sent += len(piece)
                if progress:
                    progress(f"sending {stage}", sent // item, size // item)
                yield buyer_pb2.SetUpload(job_id=job_id if seq == 0 else "", chunk=piece_to_proto(
                    StagePiece(str(stage), seq, piece, sent >= size)))
                seq += 1
                if sent >= size:
                    return

    return _send_stage(conn, job_id, stage, str(stage), gen)


def _download_file(conn: Connection, job_id: str, stage: Stage, max_items: int, path: Path) -> bytes:
    """A stage down into a file under a cap of ``max_items``; its SHA-256 (what the holder's receipt signs)."""
    def attempt() -> bytes:
        assembler = Assembler(max_items * item_bytes(stage), item=item_bytes(stage), keep=False)
        h = hashlib.sha256()
        done = None
        try:
            with open(path, "wb") as f:
                for chunk in conn.stub.DownloadSet(buyer_pb2.DownloadSetRequest(job_id=job_id, stage=str(stage)),
                                                   metadata=conn.metadata, timeout=3600):
                    done = assembler.add(Piece(chunk.seq, chunk.data, chunk.last))
                    f.write(chunk.data)
                    h.update(chunk.data)
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from None
        except ChunkError as exc:
            raise WharfError(f"stage {stage} arrived malformed ({exc}); run the job again") from None
        if done is None:
            raise WharfError(f"stage {stage} ended before its last chunk; run the job again")
        return h.digest()

    return conn.retried(attempt, f"downloading stage {stage} of job {job_id}")


def _blind_file(mapper: psi.Mapper, fn: Callable[[list[bytes]], list[bytes]], chunks: Iterator[list[bytes]],
                out: Path, total: int, what: str, progress: Progress | None, tail: Sequence[bytes] = ()) -> bytes:
    """``fn`` over a stream of chunks into ``out`` (then ``tail``); the SHA-256 of what was written."""
    h = hashlib.sha256()
    done = 0
    with open(out, "wb") as f:
        for part in psi.stream_map(mapper, fn, chunks):
            data = b"".join(part)
            f.write(data)
            h.update(data)
            done += len(part)
            if progress:
                progress(what, done, total)
        for point in tail:
            f.write(point)
            h.update(point)
    return h.digest()


def _file_chunks(path: Path, size: int = 4096) -> Iterator[list[bytes]]:
    with open(path, "rb") as f:
        while data := f.read(size * psi.POINT_BYTES):
            yield [data[i:i + psi.POINT_BYTES] for i in range(0, len(data), psi.POINT_BYTES)]


def _run_file(conn: Connection, dataset: str, key_column: str, source: Path, *, cardinality_only: bool,
              party: str | None, timeout_s: int, request_id: str | None, progress: Progress | None, parallel: bool,
              rho: float | None) -> PsiAnswer:
    """An intersection of the IDs in ``source`` with one holder's, every set streamed through files in a
    private temporary folder: memory stays flat in either set's size (``buyers.psi_files``)."""
    pool: ProcessPoolExecutor | None = None
    mapper: psi.Mapper = psi._serial_map
    key = psi.Key()
    seen: dict[str, bytes] = {}
    with scratch() as tmp:
        folder = Path(tmp)
        try:
            mine = BuyerSet(source, folder)
        except psi.PsiError as exc:
            raise InvalidArgument(f"ids: {exc}", argument="ids") from None
        if not mine.size:
            raise InvalidArgument("the ID list is empty", argument="ids")
        if mine.size > MAX_SET:
            raise InvalidArgument(f"{mine.size} distinct IDs; a PSI job takes at most {MAX_SET}", argument="ids")
        spec = PsiJob(dataset, key_column, PsiMode.INTERSECTION, cardinality_only, (), b"",
                      mine.size + psi.COMMITMENT_POINTS, rho or 0.0)
        if parallel:
            pool, mapper = _pool_mapper()
        try:
            a_path = folder / "A"
            set_digest = _blind_file(mapper, key.blind_hashed, mine.chunks(), a_path, mine.size, "blinding", progress,
                                     tail=key.blind(list(psi.BASES)))  # A ends with the commitment C
            submitted, body_digest = conn.submit_job(
                request_id or uuid.uuid4().hex, parties=[party] if party else [], min_parties=1, timeout_s=timeout_s,
                psi=psi_to_proto(spec), set_digest=set_digest)
            job_id = submitted.job_id
            _upload_file(conn, job_id, Stage.A, a_path, progress)
            a_path.unlink()
            view = _await_stage(conn, job_id, timeout_s + 30)
            if view.final:
                raise WharfError(f"job {job_id} ended before the buyer's second round")
            receipt = _early_receipt(conn, job_id, body_digest, view)
            try:
                declared = b"".join(_download(conn, job_id, Stage.P, MAX_NOISE_BYTES))
                seen[Stage.P] = items_digest([declared])
            except FailedPrecondition:
                declared = b""
            w_path, z_path = folder / "W", folder / "Z"
            seen[Stage.W] = _download_file(conn, job_id, Stage.W, MAX_W, w_path)
            if receipt is not None:  # before re-blinding: never multiply points the holder did not sign
                check_stages(receipt, {str(k): v for k, v in seen.items()})
            rows = w_path.stat().st_size // psi.POINT_BYTES
            _blind_file(mapper, key.blind, _file_chunks(w_path), z_path, rows, "re-blinding", progress)
            w_path.unlink()
            _upload_file(conn, job_id, Stage.Z, z_path, progress)
            z_path.unlink()
        finally:
            if pool is not None:
                pool.shutdown()
        view = conn.wait(job_id, timeout_s=timeout_s + 30)
        if view.state != JobState.DONE:
            raise JobFailed(view)
        result = conn.fetch_result(job_id)
        conn.check_contributors(result, body_digest, 1)
        if conn.trust is not None and body_digest:
            receipt = next(x for x in result.receipts if x.party == result.contributors[0])
            check_stages(receipt, {str(k): v for k, v in seen.items()})
            if Stage.P not in seen and any(s.stage == Stage.P for s in receipt.stages):
                raise WharfError(f"{receipt.party} declared the noise of job {job_id} but the gateway did not pass "
                                 "the declaration on; the result cannot be read without it")
        r = result.psi
        size, holder = r.size, result.contributors[0]
        positions = np.fromiter(r.positions, dtype=np.int64, count=len(r.positions))
        del result, r
        matched_rows = mine.matched_rows(positions) if positions.size else np.empty(0, dtype=np.int64)
    return PsiAnswer(job_id, PsiMode.INTERSECTION.value, size, (), {}, holder, view,
                     _noise(declared, size, {}) if declared else None, matched_rows=matched_rows)
