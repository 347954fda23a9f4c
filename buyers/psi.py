"""The buyer's side of PSI jobs, mixed into ``buyers.client.Client``.

The buyer's rounds run here: its IDs are normalised, hashed and blinded
locally (on every core), only blinded points go up, and the intersection or
the sums are finished locally.
"""

from __future__ import annotations

import itertools
import logging
import uuid
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from fractions import Fraction
from typing import Callable, Sequence

import grpc

from datawharf.chunking import split_items
from datawharf.errors import InvalidArgument, JobFailed, WharfError, from_rpc_error
from datawharf.model import JobView, PsiJob, PsiMode
from datawharf.serde import PSI_ITEM_BYTES, job_from_proto, psi_to_proto
from datawharf.v1 import buyer_pb2, common_pb2
from protocols import oprf, psi, psi_sum


@dataclass(frozen=True)
class PsiAnswer:
    job_id: str
    mode: str
    size: int
    matched: tuple[str, ...]  # the buyer's own input IDs that matched (empty when cardinality-only)
    totals: dict[str, Fraction]  # psi-sum: per value column
    holder: str
    view: JobView


Progress = Callable[[str, int, int], None]
log = logging.getLogger("wharf.client")


def _pool_mapper() -> tuple[object, psi.Mapper]:
    import multiprocessing
    import os
    from concurrent.futures import ProcessPoolExecutor

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


class PsiClientMixin:
    """PSI jobs: the buyer's rounds, run locally; only blinded values leave."""

    def _upload(self, job_id: str, stage: str, items: Sequence[bytes], progress: Progress | None) -> JobView:
        item = PSI_ITEM_BYTES[stage]
        pieces = split_items(b"".join(items), item)

        def gen():  # type: ignore[no-untyped-def]
            sent = 0
            for seq, piece in enumerate(pieces):
                sent += len(piece) // item
                if progress:
                    progress(f"sending {stage}", sent, len(items))
                yield buyer_pb2.SetUpload(job_id=job_id if seq == 0 else "", chunk=common_pb2.SetChunk(
                    stage=stage, seq=seq, data=piece, last=seq == len(pieces) - 1))

        return job_from_proto(self._call(self._stub.UploadSet, gen(), timeout=3600))  # type: ignore[attr-defined]

    def _download(self, job_id: str, stage: str) -> bytes:
        out = []
        try:
            for chunk in self._stub.DownloadSet(  # type: ignore[attr-defined]
                    buyer_pb2.DownloadSetRequest(job_id=job_id, stage=stage), metadata=self._metadata,  # type: ignore[attr-defined]
                    timeout=3600):
                if chunk.seq != len(out):
                    raise WharfError(f"stage {stage} arrived out of order; run the job again")
                out.append(chunk.data)
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from None
        return b"".join(out)

    def _await_stage(self, job_id: str, timeout_s: float) -> JobView:
        for view in self.watch(job_id, timeout_s=timeout_s):  # type: ignore[attr-defined]
            if view.final or (view.state == "AWAITING_BUYER" and view.next_stage):
                if view.state in ("FAILED", "CANCELLED"):
                    raise JobFailed(view)
                return view
        raise WharfError(f"job {job_id} ended its watch without a state")

    def psi(
        self,
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
    ) -> PsiAnswer:
        try:
            psi_mode = PsiMode(mode)
        except ValueError:
            raise InvalidArgument(f"unknown PSI mode {mode!r}; use intersection, sum or unbalanced") from None
        item = self._item(dataset)  # type: ignore[attr-defined]
        key = self._column(item, key_column)  # type: ignore[attr-defined]
        if not key.join_key:
            raise InvalidArgument(f"{key_column!r} is not a join key of {dataset!r}")
        decimals = {}
        for v in value_columns:
            col = self._column(item, v)  # type: ignore[attr-defined]
            if not col.psi_value:
                raise InvalidArgument(f"{v!r} is not a value column of {dataset!r}")
            decimals[v] = col.decimals
        try:
            if psi_mode is PsiMode.SUM:
                role = psi_sum.Buyer(ids)
            elif psi_mode is PsiMode.UNBALANCED:
                role = oprf.Buyer(ids)  # type: ignore[assignment]
            else:
                role = psi.Buyer(ids)  # type: ignore[assignment]
        except psi.PsiError as exc:
            raise InvalidArgument(f"the ID list: {exc}") from None
        if not role.unique:
            raise InvalidArgument("the ID list is empty")
        spec = PsiJob(dataset, key_column, psi_mode, cardinality_only, tuple(value_columns),
                      role.box.public if psi_mode is PsiMode.SUM else b"", len(role.unique))  # type: ignore[attr-defined]
        request = buyer_pb2.SubmitJobRequest(request_id=request_id or uuid.uuid4().hex, psi=psi_to_proto(spec),
                                             parties=[party] if party else [], timeout_seconds=timeout_s)
        view = job_from_proto(self._call(self._stub.SubmitJob, request))  # type: ignore[attr-defined]
        job_id = view.job_id
        pool, mapper = _pool_mapper() if parallel and psi_mode is not PsiMode.UNBALANCED else (None, psi._serial_map)
        try:
            total = len(role.unique)
            if psi_mode is PsiMode.UNBALANCED:
                a = role.blinded()  # type: ignore[call-arg]
            else:
                a = role.blinded(_progress_mapper(mapper, "blinding", total, progress))  # type: ignore[call-arg]
            self._upload(job_id, "A", a, progress)
            view = self._await_stage(job_id, timeout_s + 30)
            if view.final:
                raise WharfError(f"job {job_id} ended before the buyer's second round")
            if psi_mode is PsiMode.UNBALANCED:
                e = self._download(job_id, "E")
                tags = role.tags([e[i:i + 32] for i in range(0, len(e), 32)])  # type: ignore[attr-defined]
                self._upload(job_id, "Q", tags, progress)
            else:
                w_raw = self._download(job_id, "W")
                w = [w_raw[i:i + 32] for i in range(0, len(w_raw), 32)]
                z = role.reblind(w, _progress_mapper(mapper, "re-blinding", len(w), progress))  # type: ignore[union-attr]
                sealed = self._download(job_id, "S") if psi_mode is PsiMode.SUM else b""
                self._upload(job_id, "Z", z, progress)
        finally:
            if pool is not None:
                pool.shutdown()  # type: ignore[attr-defined]
        view = self.wait(job_id, timeout_s=timeout_s + 30)  # type: ignore[attr-defined]
        if view.state != "DONE":
            raise JobFailed(view)
        result = self.fetch_result(job_id)  # type: ignore[attr-defined]
        r = result.psi
        matched: tuple[str, ...] = ()
        totals: dict[str, Fraction] = {}
        if psi_mode is PsiMode.SUM:
            sums = psi_sum.SumResult(tuple(r.positions), r.size,
                                     tuple(int.from_bytes(b, "little") for b in r.masked_sums))
            raw = role.totals(sums, sealed, job_id.encode(), r.holder_rows)  # type: ignore[attr-defined]
            totals = {c: Fraction(t, 10 ** decimals[c]) for c, t in zip(value_columns, raw)}
        elif r.positions:
            ids_list = list(ids)
            hits = sorted(row for n in role.matched(r.positions) for row in role.rows[n])
            matched = tuple(ids_list[row] for row in hits)  # in the order of the buyer's input
        return PsiAnswer(job_id, psi_mode.value, r.size, matched, totals, result.contributors[0], view)

