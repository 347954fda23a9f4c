"""Proto ↔ domain conversion, in pairs. Protocols never see *_pb2 types."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from datawharf.errors import InvalidArgument, ResourceExhausted
from datawharf.filters import MAX_CONDITIONS, Condition, Op
from datawharf.model import AggregateJob, ColumnKind, ColumnSpec, JobView, Listing, TaskView
from datawharf.v1 import buyer_pb2, common_pb2
from protocols.paillier_aggregate import Statistic, ciphertext_bytes, from_bytes, to_bytes

MAX_KEY_BYTES = 1024  # 8192-bit moduli; anything larger is refused

_STAT_TO = {
    Statistic.SUM: common_pb2.STATISTIC_SUM,
    Statistic.COUNT: common_pb2.STATISTIC_COUNT,
    Statistic.MEAN: common_pb2.STATISTIC_MEAN,
    Statistic.VARIANCE: common_pb2.STATISTIC_VARIANCE,
}
_STAT_FROM = {v: k for k, v in _STAT_TO.items()}
_KIND_TO = {
    ColumnKind.INT: common_pb2.COLUMN_TYPE_INT,
    ColumnKind.DECIMAL: common_pb2.COLUMN_TYPE_DECIMAL,
    ColumnKind.STRING: common_pb2.COLUMN_TYPE_STRING,
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
        if not literal.is_finite():
            raise InvalidArgument(f"filter on {msg.column!r}: the number must be finite")
    elif which == "text":
        literal = msg.text
    else:
        raise InvalidArgument(f"filter on {msg.column!r} has no value to compare with")
    return Condition(msg.column, _OP_FROM[msg.op], literal)


def column_to_proto(c: ColumnSpec) -> common_pb2.Column:
    return common_pb2.Column(name=c.name, type=_KIND_TO[c.kind], decimals=c.decimals)


def column_from_proto(msg: common_pb2.Column) -> ColumnSpec:
    if msg.type not in _KIND_FROM:
        raise InvalidArgument(f"column {msg.name!r} has no known type")
    return ColumnSpec(msg.name, _KIND_FROM[msg.type], msg.decimals)


def listing_to_proto(listing: Listing) -> common_pb2.DatasetListing:
    return common_pb2.DatasetListing(
        name=listing.name,
        columns=[column_to_proto(c) for c in listing.columns],
        approx_rows=listing.approx_rows,
        description=listing.description,
    )


def listing_from_proto(msg: common_pb2.DatasetListing) -> Listing:
    if not msg.name:
        raise InvalidArgument("a dataset listing has no name")
    return Listing(
        msg.name, tuple(column_from_proto(c) for c in msg.columns), msg.approx_rows, msg.description
    )


def aggregate_to_proto(job: AggregateJob) -> common_pb2.AggregateSpec:
    width = (job.public_n.bit_length() + 7) // 8
    return common_pb2.AggregateSpec(
        dataset=job.dataset,
        column=job.column,
        statistic=_STAT_TO[job.statistic],
        where=[condition_to_proto(c) for c in job.where],
        decimals=job.places,
        public_key=common_pb2.PaillierPublicKey(n=to_bytes(job.public_n, width)),
    )


def aggregate_from_proto(msg: common_pb2.AggregateSpec) -> AggregateJob:
    if not msg.dataset:
        raise InvalidArgument("the job names no dataset")
    if not msg.column:
        raise InvalidArgument("the job names no column")
    if msg.statistic not in _STAT_FROM:
        raise InvalidArgument("the job names no statistic: use sum, count, mean or variance")
    if len(msg.where) > MAX_CONDITIONS:
        raise ResourceExhausted(f"at most {MAX_CONDITIONS} filter conditions, got {len(msg.where)}")
    if len(msg.public_key.n) > MAX_KEY_BYTES:
        raise ResourceExhausted(f"public key larger than {MAX_KEY_BYTES * 8} bits")
    if not msg.public_key.n:
        raise InvalidArgument("the job carries no Paillier public key")
    if msg.decimals > 12:
        raise InvalidArgument(f"decimals must be at most 12, got {msg.decimals}")
    return AggregateJob(
        dataset=msg.dataset,
        column=msg.column,
        statistic=_STAT_FROM[msg.statistic],
        where=tuple(condition_from_proto(c) for c in msg.where),
        places=msg.decimals,
        public_n=from_bytes(msg.public_key.n),
    )


def figures_to_proto(ciphertexts: tuple[int, ...], public_n: int) -> common_pb2.EncryptedFigures:
    width = ciphertext_bytes(public_n)
    return common_pb2.EncryptedFigures(ciphertexts=[to_bytes(c, width) for c in ciphertexts])


def figures_from_proto(msg: common_pb2.EncryptedFigures, public_n: int) -> tuple[int, ...]:
    width = ciphertext_bytes(public_n)
    for i, c in enumerate(msg.ciphertexts):
        if len(c) != width:
            raise InvalidArgument(f"ciphertext {i} is {len(c)} bytes; this job's key needs {width}")
    return tuple(from_bytes(c) for c in msg.ciphertexts)


def job_to_proto(view: JobView) -> buyer_pb2.Job:
    return buyer_pb2.Job(
        job_id=view.job_id,
        request_id=view.request_id,
        buyer=view.buyer,
        state=buyer_pb2.JobState.Value(f"JOB_STATE_{view.state}"),
        reason=view.reason,
        aggregate=aggregate_to_proto(view.spec),
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


def job_from_proto(msg: buyer_pb2.Job) -> JobView:
    return JobView(
        job_id=msg.job_id,
        request_id=msg.request_id,
        buyer=msg.buyer,
        state=buyer_pb2.JobState.Name(msg.state).removeprefix("JOB_STATE_"),
        reason=msg.reason,
        spec=aggregate_from_proto(msg.aggregate),
        min_parties=msg.min_parties,
        created_at=msg.created_at,
        deadline=msg.deadline,
        finished_at=msg.finished_at,
        tasks=[
            TaskView(t.party, buyer_pb2.TaskState.Name(t.state).removeprefix("TASK_STATE_"), t.reason)
            for t in msg.tasks
        ],
    )
