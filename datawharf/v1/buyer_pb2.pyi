from datawharf.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class JobState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_STATE_UNSPECIFIED: _ClassVar[JobState]
    JOB_STATE_PENDING: _ClassVar[JobState]
    JOB_STATE_DISPATCHED: _ClassVar[JobState]
    JOB_STATE_COLLECTING: _ClassVar[JobState]
    JOB_STATE_AGGREGATING: _ClassVar[JobState]
    JOB_STATE_DONE: _ClassVar[JobState]
    JOB_STATE_FAILED: _ClassVar[JobState]
    JOB_STATE_CANCELLED: _ClassVar[JobState]
    JOB_STATE_AWAITING_BUYER: _ClassVar[JobState]

class TaskState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TASK_STATE_UNSPECIFIED: _ClassVar[TaskState]
    TASK_STATE_PENDING: _ClassVar[TaskState]
    TASK_STATE_DISPATCHED: _ClassVar[TaskState]
    TASK_STATE_CONTRIBUTED: _ClassVar[TaskState]
    TASK_STATE_REFUSED: _ClassVar[TaskState]
    TASK_STATE_FAILED: _ClassVar[TaskState]
    TASK_STATE_LOST: _ClassVar[TaskState]
    TASK_STATE_EXPIRED: _ClassVar[TaskState]
    TASK_STATE_CANCELLED: _ClassVar[TaskState]
JOB_STATE_UNSPECIFIED: JobState
JOB_STATE_PENDING: JobState
JOB_STATE_DISPATCHED: JobState
JOB_STATE_COLLECTING: JobState
JOB_STATE_AGGREGATING: JobState
JOB_STATE_DONE: JobState
JOB_STATE_FAILED: JobState
JOB_STATE_CANCELLED: JobState
JOB_STATE_AWAITING_BUYER: JobState
TASK_STATE_UNSPECIFIED: TaskState
TASK_STATE_PENDING: TaskState
TASK_STATE_DISPATCHED: TaskState
TASK_STATE_CONTRIBUTED: TaskState
TASK_STATE_REFUSED: TaskState
TASK_STATE_FAILED: TaskState
TASK_STATE_LOST: TaskState
TASK_STATE_EXPIRED: TaskState
TASK_STATE_CANCELLED: TaskState

class JobLedger(_message.Message):
    __slots__ = ("entries",)
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, entries: _Optional[_Iterable[str]] = ...) -> None: ...

class DestructionReceipt(_message.Message):
    __slots__ = ("job_id", "artefact", "method", "destroyed_at", "ledger_seq", "ledger_hash")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ARTEFACT_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    DESTROYED_AT_FIELD_NUMBER: _ClassVar[int]
    LEDGER_SEQ_FIELD_NUMBER: _ClassVar[int]
    LEDGER_HASH_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    artefact: str
    method: str
    destroyed_at: float
    ledger_seq: int
    ledger_hash: str
    def __init__(self, job_id: _Optional[str] = ..., artefact: _Optional[str] = ..., method: _Optional[str] = ..., destroyed_at: _Optional[float] = ..., ledger_seq: _Optional[int] = ..., ledger_hash: _Optional[str] = ...) -> None: ...

class SetUpload(_message.Message):
    __slots__ = ("job_id", "chunk")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    chunk: _common_pb2.SetChunk
    def __init__(self, job_id: _Optional[str] = ..., chunk: _Optional[_Union[_common_pb2.SetChunk, _Mapping]] = ...) -> None: ...

class DownloadSetRequest(_message.Message):
    __slots__ = ("job_id", "stage")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    stage: str
    def __init__(self, job_id: _Optional[str] = ..., stage: _Optional[str] = ...) -> None: ...

class ListCatalogRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CatalogEntry(_message.Message):
    __slots__ = ("dataset", "holders", "columns", "approx_rows", "holders_online", "terms")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    HOLDERS_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    APPROX_ROWS_FIELD_NUMBER: _ClassVar[int]
    HOLDERS_ONLINE_FIELD_NUMBER: _ClassVar[int]
    TERMS_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    holders: _containers.RepeatedScalarFieldContainer[str]
    columns: _containers.RepeatedCompositeFieldContainer[_common_pb2.Column]
    approx_rows: int
    holders_online: _containers.RepeatedScalarFieldContainer[str]
    terms: _containers.RepeatedCompositeFieldContainer[HolderTerms]
    def __init__(self, dataset: _Optional[str] = ..., holders: _Optional[_Iterable[str]] = ..., columns: _Optional[_Iterable[_Union[_common_pb2.Column, _Mapping]]] = ..., approx_rows: _Optional[int] = ..., holders_online: _Optional[_Iterable[str]] = ..., terms: _Optional[_Iterable[_Union[HolderTerms, _Mapping]]] = ...) -> None: ...

class HolderTerms(_message.Message):
    __slots__ = ("holder", "privacy", "holders")
    HOLDER_FIELD_NUMBER: _ClassVar[int]
    PRIVACY_FIELD_NUMBER: _ClassVar[int]
    HOLDERS_FIELD_NUMBER: _ClassVar[int]
    holder: str
    privacy: _common_pb2.PrivacyTerms
    holders: int
    def __init__(self, holder: _Optional[str] = ..., privacy: _Optional[_Union[_common_pb2.PrivacyTerms, _Mapping]] = ..., holders: _Optional[int] = ...) -> None: ...

class ListCatalogResponse(_message.Message):
    __slots__ = ("datasets",)
    DATASETS_FIELD_NUMBER: _ClassVar[int]
    datasets: _containers.RepeatedCompositeFieldContainer[CatalogEntry]
    def __init__(self, datasets: _Optional[_Iterable[_Union[CatalogEntry, _Mapping]]] = ...) -> None: ...

class SubmitJobRequest(_message.Message):
    __slots__ = ("request_id", "aggregate", "psi", "parties", "min_parties", "timeout_seconds", "signed")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    AGGREGATE_FIELD_NUMBER: _ClassVar[int]
    PSI_FIELD_NUMBER: _ClassVar[int]
    PARTIES_FIELD_NUMBER: _ClassVar[int]
    MIN_PARTIES_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    SIGNED_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    aggregate: _common_pb2.AggregateSpec
    psi: _common_pb2.PsiSpec
    parties: _containers.RepeatedScalarFieldContainer[str]
    min_parties: int
    timeout_seconds: int
    signed: _common_pb2.SignedJob
    def __init__(self, request_id: _Optional[str] = ..., aggregate: _Optional[_Union[_common_pb2.AggregateSpec, _Mapping]] = ..., psi: _Optional[_Union[_common_pb2.PsiSpec, _Mapping]] = ..., parties: _Optional[_Iterable[str]] = ..., min_parties: _Optional[int] = ..., timeout_seconds: _Optional[int] = ..., signed: _Optional[_Union[_common_pb2.SignedJob, _Mapping]] = ...) -> None: ...

class GetJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class PartyTask(_message.Message):
    __slots__ = ("party", "state", "reason")
    PARTY_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    party: str
    state: TaskState
    reason: str
    def __init__(self, party: _Optional[str] = ..., state: _Optional[_Union[TaskState, str]] = ..., reason: _Optional[str] = ...) -> None: ...

class Job(_message.Message):
    __slots__ = ("job_id", "request_id", "buyer", "state", "reason", "aggregate", "psi", "tasks", "min_parties", "created_at", "deadline", "finished_at", "next_stage")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    BUYER_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    AGGREGATE_FIELD_NUMBER: _ClassVar[int]
    PSI_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    MIN_PARTIES_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    NEXT_STAGE_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    request_id: str
    buyer: str
    state: JobState
    reason: str
    aggregate: _common_pb2.AggregateSpec
    psi: _common_pb2.PsiSpec
    tasks: _containers.RepeatedCompositeFieldContainer[PartyTask]
    min_parties: int
    created_at: float
    deadline: float
    finished_at: float
    next_stage: str
    def __init__(self, job_id: _Optional[str] = ..., request_id: _Optional[str] = ..., buyer: _Optional[str] = ..., state: _Optional[_Union[JobState, str]] = ..., reason: _Optional[str] = ..., aggregate: _Optional[_Union[_common_pb2.AggregateSpec, _Mapping]] = ..., psi: _Optional[_Union[_common_pb2.PsiSpec, _Mapping]] = ..., tasks: _Optional[_Iterable[_Union[PartyTask, _Mapping]]] = ..., min_parties: _Optional[int] = ..., created_at: _Optional[float] = ..., deadline: _Optional[float] = ..., finished_at: _Optional[float] = ..., next_stage: _Optional[str] = ...) -> None: ...

class Suppression(_message.Message):
    __slots__ = ("party", "groups")
    PARTY_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    party: str
    groups: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, party: _Optional[str] = ..., groups: _Optional[_Iterable[int]] = ...) -> None: ...

class JobResult(_message.Message):
    __slots__ = ("job_id", "figures", "contributors", "suppressed", "psi", "receipts")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    FIGURES_FIELD_NUMBER: _ClassVar[int]
    CONTRIBUTORS_FIELD_NUMBER: _ClassVar[int]
    SUPPRESSED_FIELD_NUMBER: _ClassVar[int]
    PSI_FIELD_NUMBER: _ClassVar[int]
    RECEIPTS_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    figures: _common_pb2.EncryptedFigures
    contributors: _containers.RepeatedScalarFieldContainer[str]
    suppressed: _containers.RepeatedCompositeFieldContainer[Suppression]
    psi: PsiResult
    receipts: _containers.RepeatedCompositeFieldContainer[_common_pb2.ContributionReceipt]
    def __init__(self, job_id: _Optional[str] = ..., figures: _Optional[_Union[_common_pb2.EncryptedFigures, _Mapping]] = ..., contributors: _Optional[_Iterable[str]] = ..., suppressed: _Optional[_Iterable[_Union[Suppression, _Mapping]]] = ..., psi: _Optional[_Union[PsiResult, _Mapping]] = ..., receipts: _Optional[_Iterable[_Union[_common_pb2.ContributionReceipt, _Mapping]]] = ...) -> None: ...

class PsiResult(_message.Message):
    __slots__ = ("size", "positions", "masked_sums", "holder_rows", "holder_sums")
    SIZE_FIELD_NUMBER: _ClassVar[int]
    POSITIONS_FIELD_NUMBER: _ClassVar[int]
    MASKED_SUMS_FIELD_NUMBER: _ClassVar[int]
    HOLDER_ROWS_FIELD_NUMBER: _ClassVar[int]
    HOLDER_SUMS_FIELD_NUMBER: _ClassVar[int]
    size: int
    positions: _containers.RepeatedScalarFieldContainer[int]
    masked_sums: _containers.RepeatedScalarFieldContainer[bytes]
    holder_rows: int
    holder_sums: _containers.RepeatedCompositeFieldContainer[PsiHolderSums]
    def __init__(self, size: _Optional[int] = ..., positions: _Optional[_Iterable[int]] = ..., masked_sums: _Optional[_Iterable[bytes]] = ..., holder_rows: _Optional[int] = ..., holder_sums: _Optional[_Iterable[_Union[PsiHolderSums, _Mapping]]] = ...) -> None: ...

class PsiHolderSums(_message.Message):
    __slots__ = ("party", "positions", "masked_sums", "holder_rows")
    PARTY_FIELD_NUMBER: _ClassVar[int]
    POSITIONS_FIELD_NUMBER: _ClassVar[int]
    MASKED_SUMS_FIELD_NUMBER: _ClassVar[int]
    HOLDER_ROWS_FIELD_NUMBER: _ClassVar[int]
    party: str
    positions: _containers.RepeatedScalarFieldContainer[int]
    masked_sums: _containers.RepeatedScalarFieldContainer[bytes]
    holder_rows: int
    def __init__(self, party: _Optional[str] = ..., positions: _Optional[_Iterable[int]] = ..., masked_sums: _Optional[_Iterable[bytes]] = ..., holder_rows: _Optional[int] = ...) -> None: ...
