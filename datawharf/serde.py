"""Proto ↔ domain conversion, in pairs. Protocols never see *_pb2 types."""

from __future__ import annotations

import math
from decimal import Decimal, InvalidOperation
from typing import Any

from google.protobuf.message import DecodeError

from datawharf.errors import InvalidArgument, ResourceExhausted
from datawharf.filters import MAX_CONDITIONS, Condition, FilterSyntaxError, Op, check_literal
from datawharf.model import (
    AggregateJob,
    ColumnKind,
    ColumnSpec,
    GroupBy,
    JobView,
    Listing,
    PrivacyTerms,
    PsiJob,
    PsiMode,
    TaskView,
)
from datawharf.messages import CancelTask, HolderUpload, Notice, SetForHolder, StagePiece, TaskOffer, ToParty
from datawharf.states import JobState, TaskState
from datawharf.v1 import buyer_pb2, common_pb2, party_pb2
from protocols import psi_multi, psi_stages
from protocols.aggregate import AggregateResult, Contribution
from protocols.figures import MAX_FIGURES, Statistic
from protocols.schemes import Backend, PublicParams
from protocols.schemes.tenseal_he import MAX_CONTEXT_BYTES

MAX_KEY_BYTES = 1024  # 8192-bit moduli; anything larger is refused
# A Paillier-Blum proof carries 1 + 2m residues of the modulus's size (m = 80): ~82 KiB at 4096 bits.
MAX_PROOF_BYTES = 96 << 10
MAX_GROUPS = 4096
MAX_DIMENSION = 1 << 20
MAX_CONTRIBUTORS = 1024
MAX_RHO = 100.0  # no holder's budget is larger (parties.config caps it)

_STAT_TO = {
    Statistic.SUM: common_pb2.STATISTIC_SUM,
    Statistic.COUNT: common_pb2.STATISTIC_COUNT,
    Statistic.MEAN: common_pb2.STATISTIC_MEAN,
    Statistic.VARIANCE: common_pb2.STATISTIC_VARIANCE,
    Statistic.HISTOGRAM: common_pb2.STATISTIC_HISTOGRAM,
}
_STAT_FROM = {v: k for k, v in _STAT_TO.items()}
_KIND_TO = {
    ColumnKind.INT: common_pb2.COLUMN_TYPE_INT,
    ColumnKind.DECIMAL: common_pb2.COLUMN_TYPE_DECIMAL,
    ColumnKind.STRING: common_pb2.COLUMN_TYPE_STRING,
    ColumnKind.VECTOR: common_pb2.COLUMN_TYPE_VECTOR,
}
_KIND_FROM = {v: k for k, v in _KIND_TO.items()}
_OP_TO = {
    Op.EQ: common_pb2.COMPARISON_EQ,
    Op.NE: common_pb2.COMPARISON_NE,
    Op.LT: common_pb2.COMPARISON_LT,
    Op.LE: common_pb2.COMPARISON_LE,
    Op.GT: common_pb2.COMPARISON_GT,
    Op.GE: common_pb2.COMPARISON_GE,
}
_OP_FROM = {v: k for k, v in _OP_TO.items()}
_BACKEND_TO = {
    Backend.PAILLIER: common_pb2.BACKEND_PAILLIER,
    Backend.PAILLIER_PACKED: common_pb2.BACKEND_PAILLIER_PACKED,
    Backend.BFV: common_pb2.BACKEND_BFV,
    Backend.CKKS: common_pb2.BACKEND_CKKS,
}
_BACKEND_FROM = {v: k for k, v in _BACKEND_TO.items()}


def condition_to_proto(c: Condition) -> common_pb2.Condition:
    msg = common_pb2.Condition(column=c.column, op=_OP_TO[c.op])
    if isinstance(c.literal, Decimal):
        msg.number = str(c.literal)
    else:
        msg.text = c.literal
    return msg


def condition_from_proto(msg: common_pb2.Condition) -> Condition:
    if msg.op not in _OP_FROM:
        raise InvalidArgument(f"filter on {msg.column!r}: missing or unknown comparison")
    if not msg.column:
        raise InvalidArgument("filter condition names no column")
    which = msg.WhichOneof("literal")
    if which == "number":
        try:
            literal: str | Decimal = Decimal(msg.number)
        except InvalidOperation:
            raise InvalidArgument(f"filter on {msg.column!r}: {msg.number!r} is not a number") from None
    elif which == "text":
        literal = msg.text
    else:
        raise InvalidArgument(f"filter on {msg.column!r} has no value to compare with")
    try:
        check_literal(msg.column, literal)
    except FilterSyntaxError as exc:
        raise InvalidArgument(str(exc)) from None
    return Condition(msg.column, _OP_FROM[msg.op], literal)


def column_to_proto(c: ColumnSpec) -> common_pb2.Column:
    return common_pb2.Column(
        name=c.name, type=_KIND_TO[c.kind], decimals=c.decimals,
        dimension=c.dimension if c.kind is ColumnKind.VECTOR else 0, categories=c.categories,
        join_key=c.join_key, psi_value=c.psi_value,
        filter_ops=[_OP_TO[o] for o in c.filter_ops], group=c.group, aggregate=c.aggregate,
        identifier=c.identifier,
        lower=str(c.bounds[0]) if c.bounds else "", upper=str(c.bounds[1]) if c.bounds else "",
    )


def column_from_proto(msg: common_pb2.Column) -> ColumnSpec:
    if msg.type not in _KIND_FROM:
        raise InvalidArgument(f"column {msg.name!r} has no known type")
    kind = _KIND_FROM[msg.type]
    dimension = msg.dimension if kind is ColumnKind.VECTOR else 1
    if not 1 <= dimension <= MAX_DIMENSION:
        raise InvalidArgument(f"column {msg.name!r}: dimension must be 1 to {MAX_DIMENSION}")
    if any(o not in _OP_FROM for o in msg.filter_ops):
        raise InvalidArgument(f"column {msg.name!r} lists an unknown filter operator")
    bounds = None
    if msg.lower or msg.upper:
        try:
            bounds = (Decimal(msg.lower), Decimal(msg.upper))
        except InvalidOperation:
            raise InvalidArgument(f"column {msg.name!r}: bounds are not numbers") from None
        if not all(b.is_finite() for b in bounds) or bounds[0] > bounds[1]:
            raise InvalidArgument(f"column {msg.name!r}: bounds must be finite with lower <= upper")
    return ColumnSpec(msg.name, kind, msg.decimals, dimension, tuple(msg.categories), msg.join_key, msg.psi_value,
                      tuple(_OP_FROM[o] for o in msg.filter_ops), msg.group, msg.aggregate, msg.identifier, bounds)


def privacy_to_proto(t: PrivacyTerms) -> common_pb2.PrivacyTerms:
    return common_pb2.PrivacyTerms(dp=t.dp, budget=t.budget, period_days=t.period_days, max_per_job=t.max_per_job,
                                   default_per_job=t.default_per_job, noise=t.noise,
                                   list_suppressed=t.list_suppressed)


def privacy_from_proto(msg: common_pb2.PrivacyTerms) -> PrivacyTerms:
    return PrivacyTerms(msg.dp, msg.budget, msg.period_days, msg.max_per_job, msg.default_per_job,
                        msg.noise or "full", msg.list_suppressed)


def listing_to_proto(listing: Listing) -> common_pb2.DatasetListing:
    return common_pb2.DatasetListing(
        name=listing.name,
        columns=[column_to_proto(c) for c in listing.columns],
        approx_rows=listing.approx_rows,
        description=listing.description,
        min_parties=listing.min_parties,
        privacy=privacy_to_proto(listing.privacy),
        # 0 on the wire for an ordinary holder, so its listing's bytes are what they always were.
        holders=listing.holders if listing.holders > 1 else 0,
    )


def listing_from_proto(msg: common_pb2.DatasetListing) -> Listing:
    if not msg.name:
        raise InvalidArgument("a dataset listing has no name")
    if msg.holders > MAX_CONTRIBUTORS:
        raise InvalidArgument(f"listing {msg.name!r} claims {msg.holders} holders; at most {MAX_CONTRIBUTORS}")
    return Listing(
        msg.name, tuple(column_from_proto(c) for c in msg.columns), msg.approx_rows, msg.description,
        max(1, msg.min_parties), privacy_from_proto(msg.privacy), max(1, msg.holders),
    )


def params_to_proto(p: PublicParams, *, with_keys: bool = True) -> common_pb2.EncryptionParameters:
    width = (p.paillier_n.bit_length() + 7) // 8
    return common_pb2.EncryptionParameters(
        backend=_BACKEND_TO[p.backend],
        length=p.length,
        max_contributors=p.max_contributors,
        paillier_n=p.paillier_n.to_bytes(width, "big") if with_keys and p.paillier_n else b"",
        slot_bits=p.slot_bits,
        public_context=p.public_context if with_keys else b"",
        poly_modulus_degree=p.poly_modulus_degree,
        coeff_mod_bit_sizes=list(p.coeff_mod_bit_sizes),
        plain_modulus=p.plain_modulus,
        scale_bits=p.scale_bits,
        paillier_modulus_proof=p.modulus_proof if with_keys else b"",
    )


def params_from_proto(msg: common_pb2.EncryptionParameters, *, need_keys: bool = True) -> PublicParams:
    if msg.backend not in _BACKEND_FROM:
        raise InvalidArgument("the job names no encryption backend: use paillier, paillier-packed, bfv or ckks")
    backend = _BACKEND_FROM[msg.backend]
    if len(msg.paillier_n) > MAX_KEY_BYTES:
        raise ResourceExhausted(f"public key larger than {MAX_KEY_BYTES * 8} bits")
    if len(msg.public_context) > MAX_CONTEXT_BYTES:
        raise ResourceExhausted(f"public context larger than {MAX_CONTEXT_BYTES} bytes")
    if len(msg.paillier_modulus_proof) > MAX_PROOF_BYTES:
        raise ResourceExhausted(f"modulus proof larger than {MAX_PROOF_BYTES} bytes")
    if not 1 <= msg.length <= MAX_FIGURES:
        raise InvalidArgument(f"the job's length must be 1 to {MAX_FIGURES} figures")
    if not 1 <= msg.max_contributors <= MAX_CONTRIBUTORS:
        raise InvalidArgument(f"max_contributors must be 1 to {MAX_CONTRIBUTORS}")
    if need_keys:
        if backend in (Backend.PAILLIER, Backend.PAILLIER_PACKED) and not msg.paillier_n:
            raise InvalidArgument("the job carries no Paillier public key")
        if backend in (Backend.BFV, Backend.CKKS) and not msg.public_context:
            raise InvalidArgument(f"the job carries no {backend.value} public context")
    return PublicParams(
        backend=backend,
        length=msg.length,
        max_contributors=msg.max_contributors,
        paillier_n=int.from_bytes(msg.paillier_n, "big"),
        slot_bits=msg.slot_bits,
        public_context=msg.public_context,
        modulus_proof=msg.paillier_modulus_proof,
        poly_modulus_degree=msg.poly_modulus_degree,
        coeff_mod_bit_sizes=tuple(msg.coeff_mod_bit_sizes),
        plain_modulus=msg.plain_modulus,
        scale_bits=msg.scale_bits,
    )


def aggregate_to_proto(job: AggregateJob, *, with_keys: bool = True) -> common_pb2.AggregateSpec:
    msg = common_pb2.AggregateSpec(
        dataset=job.dataset,
        column=job.column,
        statistic=_STAT_TO[job.statistic],
        where=[condition_to_proto(c) for c in job.where],
        decimals=job.places,
        encryption=params_to_proto(job.encryption, with_keys=with_keys),
        bin_edges=[str(e) for e in job.bin_edges],
        dimension=job.dimension,
        rho=job.rho,
    )
    if job.group_by is not None:
        msg.group_by.CopyFrom(common_pb2.GroupBy(column=job.group_by.column, categories=job.group_by.categories))
    return msg


def aggregate_from_proto(msg: common_pb2.AggregateSpec, *, need_keys: bool = True) -> AggregateJob:
    if not msg.dataset:
        raise InvalidArgument("the job names no dataset")
    if not msg.column:
        raise InvalidArgument("the job names no column")
    if msg.statistic not in _STAT_FROM:
        raise InvalidArgument("the job names no statistic: use sum, count, mean, variance or histogram")
    if len(msg.where) > MAX_CONDITIONS:
        raise ResourceExhausted(f"at most {MAX_CONDITIONS} filter conditions, got {len(msg.where)}")
    if msg.decimals > 12:
        raise InvalidArgument(f"decimals must be at most 12, got {msg.decimals}")
    statistic = _STAT_FROM[msg.statistic]
    group_by = None
    if msg.HasField("group_by"):
        if not msg.group_by.column or not msg.group_by.categories:
            raise InvalidArgument("group-by names no column or no categories")
        if len(msg.group_by.categories) > MAX_GROUPS:
            raise ResourceExhausted(f"at most {MAX_GROUPS} groups")
        group_by = GroupBy(msg.group_by.column, tuple(msg.group_by.categories))
    edges: list[Decimal] = []
    for e in msg.bin_edges:
        try:
            d = Decimal(e)
        except InvalidOperation:
            raise InvalidArgument(f"bin edge {e!r} is not a number") from None
        if not d.is_finite():
            raise InvalidArgument("bin edges must be finite")
        try:
            check_literal("bins", d)  # an edge is scaled to an integer at the holder: bound its size
        except FilterSyntaxError as exc:
            raise InvalidArgument(str(exc), argument="bins") from None
        edges.append(d)
    if statistic is Statistic.HISTOGRAM:
        if len(edges) < 2 or any(b <= a for a, b in zip(edges, edges[1:])):
            raise InvalidArgument("a histogram needs at least two strictly increasing bin edges, e.g. bins=0,18,65,120",
                                  argument="bins")
        if len(edges) - 1 > MAX_GROUPS:
            raise ResourceExhausted(f"at most {MAX_GROUPS} bins")
        if group_by is not None:
            raise InvalidArgument("a histogram cannot also be grouped; use one or the other")
    elif edges:
        raise InvalidArgument("bin edges only apply to the histogram statistic", argument="bins")
    if not (math.isfinite(msg.rho) and 0 <= msg.rho <= MAX_RHO):
        raise InvalidArgument(f"the privacy spend rho must be between 0 and {MAX_RHO}, got {msg.rho}", argument="rho")
    dimension = msg.dimension or 1
    if dimension > MAX_DIMENSION:
        raise ResourceExhausted(f"dimension above {MAX_DIMENSION}")
    job = AggregateJob(
        dataset=msg.dataset,
        column=msg.column,
        statistic=statistic,
        where=tuple(condition_from_proto(c) for c in msg.where),
        places=msg.decimals,
        encryption=params_from_proto(msg.encryption, need_keys=need_keys),
        dimension=dimension,
        group_by=group_by,
        bin_edges=tuple(edges),
        rho=msg.rho,
    )
    try:
        layout = job.layout
    except ValueError as exc:
        raise ResourceExhausted(str(exc)) from None
    if layout.length != job.encryption.length:
        raise InvalidArgument(
            f"the encryption parameters are for {job.encryption.length} figures; this job has {layout.length}"
        )
    return job


def contribution_to_proto(c: Contribution) -> common_pb2.EncryptedFigures:
    return common_pb2.EncryptedFigures(ciphertexts=list(c.ciphertexts), suppressed_groups=list(c.suppressed))


def contribution_from_proto(msg: common_pb2.EncryptedFigures) -> Contribution:
    return Contribution(tuple(msg.ciphertexts), tuple(msg.suppressed_groups))


def result_to_proto(job_id: str, result: AggregateResult, contributors: list[str]) -> buyer_pb2.JobResult:
    return buyer_pb2.JobResult(
        job_id=job_id,
        figures=common_pb2.EncryptedFigures(ciphertexts=list(result.ciphertexts)),
        contributors=contributors,
        suppressed=[buyer_pb2.Suppression(party=p, groups=list(g)) for p, g in sorted(result.suppressed.items())],
    )


def result_from_proto(msg: buyer_pb2.JobResult) -> AggregateResult:
    return AggregateResult(
        tuple(msg.figures.ciphertexts),
        len(msg.contributors),
        {s.party: tuple(s.groups) for s in msg.suppressed},
    )


_PSI_TO = {
    PsiMode.INTERSECTION: common_pb2.PSI_MODE_INTERSECTION,
    PsiMode.SUM: common_pb2.PSI_MODE_SUM,
    PsiMode.UNBALANCED: common_pb2.PSI_MODE_UNBALANCED,
}
_PSI_FROM = {v: k for k, v in _PSI_TO.items()}
MAX_PSI_SET = psi_stages.MAX_A  # the buyer's IDs and, in balanced modes, its 2-point commitment


def psi_to_proto(job: PsiJob) -> common_pb2.PsiSpec:
    return common_pb2.PsiSpec(
        dataset=job.dataset, key_column=job.key_column, mode=_PSI_TO[job.mode],
        cardinality_only=job.cardinality_only, value_columns=job.value_columns,
        buyer_box_key=job.buyer_box_key, buyer_set_size=job.buyer_set_size, rho=job.rho,
        holders=job.holders, at_least=job.at_least,
    )


def psi_from_proto(msg: common_pb2.PsiSpec) -> PsiJob:
    if not msg.dataset or not msg.key_column:
        raise InvalidArgument("a PSI job needs a dataset and a key column")
    if msg.mode not in _PSI_FROM:
        raise InvalidArgument("a PSI job needs a mode: intersection, sum or unbalanced")
    mode = _PSI_FROM[msg.mode]
    if mode is PsiMode.SUM:
        if not msg.value_columns:
            raise InvalidArgument("psi-sum needs at least one of value_columns", argument="value_columns")
        if len(msg.buyer_box_key) != 32:
            raise InvalidArgument("psi-sum needs the buyer's 32-byte box key")
        if msg.cardinality_only:
            raise InvalidArgument("psi-sum already releases only the size and the sums; drop cardinality_only",
                                  argument="cardinality_only")
    elif msg.value_columns:
        raise InvalidArgument("value columns apply only to psi-sum")
    if len(msg.value_columns) > 64:
        raise ResourceExhausted("at most 64 value columns")
    if msg.buyer_set_size > MAX_PSI_SET:
        raise ResourceExhausted(f"the buyer's set of {msg.buyer_set_size} points exceeds the gateway's limit of "
                                f"{MAX_PSI_SET} ({psi_stages.MAX_SET} IDs and the buyer's commitment)")
    if not (math.isfinite(msg.rho) and 0 <= msg.rho <= MAX_RHO):
        raise InvalidArgument(f"the privacy spend rho must be between 0 and {MAX_RHO}, got {msg.rho}", argument="rho")
    if msg.holders or msg.at_least:
        if mode is PsiMode.UNBALANCED:
            raise InvalidArgument("unbalanced PSI runs against one holder; drop holders and at_least",
                                  argument="holders")
        try:
            psi_multi.check_holders(msg.holders, msg.at_least)
        except psi_multi.HolderError as exc:
            raise InvalidArgument(str(exc), argument=exc.argument) from None
    return PsiJob(msg.dataset, msg.key_column, mode, msg.cardinality_only, tuple(msg.value_columns),
                  msg.buyer_box_key, msg.buyer_set_size, msg.rho, tuple(msg.holders), msg.at_least)


def job_to_proto(view: JobView) -> buyer_pb2.Job:
    spec = {"psi": psi_to_proto(view.spec)} if isinstance(view.spec, PsiJob) else {
        "aggregate": aggregate_to_proto(view.spec, with_keys=False)}
    return buyer_pb2.Job(
        job_id=view.job_id,
        request_id=view.request_id,
        buyer=view.buyer,
        state=buyer_pb2.JobState.Value(f"JOB_STATE_{view.state}"),
        reason=view.reason,
        next_stage=view.next_stage,
        **spec,
        tasks=[
            buyer_pb2.PartyTask(
                party=t.party,
                state=buyer_pb2.TaskState.Value(f"TASK_STATE_{t.state}"),
                reason=t.reason,
            )
            for t in view.tasks
        ],
        min_parties=view.min_parties,
        created_at=view.created_at,
        deadline=view.deadline,
        finished_at=view.finished_at,
    )


def _state(enum_name: str, prefix: str, cls: type[JobState] | type[TaskState]) -> JobState | TaskState:
    try:
        return cls(enum_name.removeprefix(prefix))
    except ValueError:
        raise InvalidArgument(f"the gateway sent an unknown state {enum_name}; upgrade this client") from None


def job_from_proto(msg: buyer_pb2.Job) -> JobView:
    return JobView(
        job_id=msg.job_id,
        request_id=msg.request_id,
        buyer=msg.buyer,
        state=JobState(_state(buyer_pb2.JobState.Name(msg.state), "JOB_STATE_", JobState)),
        reason=msg.reason,
        spec=psi_from_proto(msg.psi) if msg.WhichOneof("spec") == "psi"
        else aggregate_from_proto(msg.aggregate, need_keys=False),
        min_parties=msg.min_parties,
        created_at=msg.created_at,
        deadline=msg.deadline,
        finished_at=msg.finished_at,
        tasks=[
            TaskView(t.party, TaskState(_state(buyer_pb2.TaskState.Name(t.state), "TASK_STATE_", TaskState)),
                     t.reason)
            for t in msg.tasks
        ],
        next_stage=msg.next_stage,
    )


def piece_to_proto(p: StagePiece) -> common_pb2.SetChunk:
    return common_pb2.SetChunk(stage=p.stage, seq=p.seq, data=p.data, last=p.last)


def piece_from_proto(msg: common_pb2.SetChunk) -> StagePiece:
    return StagePiece(msg.stage, msg.seq, msg.data, msg.last)


def to_party_to_proto(msg: ToParty) -> party_pb2.GatewayMessage:
    if isinstance(msg, TaskOffer):
        task = party_pb2.Task(task_id=msg.task_id, job_id=msg.job_id, buyer=msg.buyer, min_parties=msg.min_parties,
                              deadline=msg.deadline, cached_tables=msg.cached_tables, crl=msg.crl)
        if msg.head is not None:
            task.head.CopyFrom(common_pb2.LedgerHead(seq=msg.head[0], hash=msg.head[1], signature=msg.head[2]))
        if msg.signed:
            # The holder computes on the signed body's spec; a second copy would only double the
            # message (and a large public context would push it past the message limit).
            task.signed.ParseFromString(msg.signed)
        elif isinstance(msg.spec, PsiJob):
            task.psi.CopyFrom(psi_to_proto(msg.spec))
        else:
            task.aggregate.CopyFrom(aggregate_to_proto(msg.spec))
        return party_pb2.GatewayMessage(task=task)
    if isinstance(msg, CancelTask):
        return party_pb2.GatewayMessage(cancel=party_pb2.CancelTask(task_id=msg.task_id, reason=msg.reason))
    if isinstance(msg, Notice):
        return party_pb2.GatewayMessage(notice=party_pb2.Notice(task_id=msg.task_id, message=msg.message))
    return party_pb2.GatewayMessage(psi=party_pb2.PsiDownload(task_id=msg.task_id, chunk=piece_to_proto(msg.piece)))


def to_party_from_proto(msg: party_pb2.GatewayMessage) -> ToParty | None:
    """The domain message, or None for the stream's own bookkeeping (``registered``)."""
    kind = msg.WhichOneof("body")
    if kind == "task":
        t = msg.task
        holder: Any = t
        if t.WhichOneof("spec") is None and t.HasField("signed"):
            try:  # unverified here: the holder's verifier checks the signature before using it
                holder = common_pb2.JobBody.FromString(t.signed.body)
            except DecodeError:
                raise InvalidArgument(f"task {t.task_id} carries a signed job that cannot be read") from None
        which = holder.WhichOneof("spec")
        if which is None:
            raise InvalidArgument(f"task {t.task_id} carries no job spec")
        spec: AggregateJob | PsiJob = (psi_from_proto(holder.psi) if which == "psi"
                                       else aggregate_from_proto(holder.aggregate))
        return TaskOffer(t.task_id, t.job_id, t.buyer, t.min_parties, t.deadline, spec, tuple(t.cached_tables),
                         signed=t.signed.SerializeToString() if t.HasField("signed") else b"", crl=t.crl,
                         head=(t.head.seq, t.head.hash, t.head.signature) if t.HasField("head") else None)
    if kind == "cancel":
        return CancelTask(msg.cancel.task_id, msg.cancel.reason)
    if kind == "notice":
        return Notice(msg.notice.task_id, msg.notice.message)
    if kind == "psi":
        return SetForHolder(msg.psi.task_id, piece_from_proto(msg.psi.chunk))
    return None


def holder_upload_to_proto(u: HolderUpload) -> party_pb2.PsiUpload:
    msg = party_pb2.PsiUpload(task_id=u.task_id, done=u.done, min_intersection=u.min_intersection,
                              table_epoch=u.table_epoch, receipt=u.receipt)
    if u.piece is not None:
        msg.chunk.CopyFrom(piece_to_proto(u.piece))
    return msg


def holder_upload_from_proto(msg: party_pb2.PsiUpload) -> HolderUpload:
    piece = piece_from_proto(msg.chunk) if msg.HasField("chunk") else None
    return HolderUpload(msg.task_id, piece, msg.done, msg.min_intersection, msg.table_epoch, msg.receipt)


def listings_to_bytes(listings: list[Listing]) -> bytes:
    """A party's listings as stored by the gateway (the wire's Register message)."""
    return party_pb2.Register(datasets=[listing_to_proto(x) for x in listings]).SerializeToString(deterministic=True)


def listings_from_bytes(raw: bytes) -> list[Listing]:
    return [listing_from_proto(d) for d in party_pb2.Register.FromString(raw).datasets]
