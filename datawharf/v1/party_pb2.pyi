from datawharf.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PartyMessage(_message.Message):
    __slots__ = ("register", "heartbeat", "contribution", "refusal", "failure", "psi")
    REGISTER_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    CONTRIBUTION_FIELD_NUMBER: _ClassVar[int]
    REFUSAL_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    PSI_FIELD_NUMBER: _ClassVar[int]
    register: Register
    heartbeat: Heartbeat
    contribution: ContributionChunk
    refusal: TaskRefusal
    failure: TaskFailure
    psi: PsiUpload
    def __init__(self, register: _Optional[_Union[Register, _Mapping]] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ..., contribution: _Optional[_Union[ContributionChunk, _Mapping]] = ..., refusal: _Optional[_Union[TaskRefusal, _Mapping]] = ..., failure: _Optional[_Union[TaskFailure, _Mapping]] = ..., psi: _Optional[_Union[PsiUpload, _Mapping]] = ...) -> None: ...

class PsiUpload(_message.Message):
    __slots__ = ("task_id", "chunk", "done", "min_intersection", "table_epoch", "receipt")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    MIN_INTERSECTION_FIELD_NUMBER: _ClassVar[int]
    TABLE_EPOCH_FIELD_NUMBER: _ClassVar[int]
    RECEIPT_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    chunk: _common_pb2.SetChunk
    done: bool
    min_intersection: int
    table_epoch: str
    receipt: bytes
    def __init__(self, task_id: _Optional[str] = ..., chunk: _Optional[_Union[_common_pb2.SetChunk, _Mapping]] = ..., done: _Optional[bool] = ..., min_intersection: _Optional[int] = ..., table_epoch: _Optional[str] = ..., receipt: _Optional[bytes] = ...) -> None: ...

class Register(_message.Message):
    __slots__ = ("datasets", "software_version")
    DATASETS_FIELD_NUMBER: _ClassVar[int]
    SOFTWARE_VERSION_FIELD_NUMBER: _ClassVar[int]
    datasets: _containers.RepeatedCompositeFieldContainer[_common_pb2.DatasetListing]
    software_version: str
    def __init__(self, datasets: _Optional[_Iterable[_Union[_common_pb2.DatasetListing, _Mapping]]] = ..., software_version: _Optional[str] = ...) -> None: ...

class Heartbeat(_message.Message):
    __slots__ = ("sent_at",)
    SENT_AT_FIELD_NUMBER: _ClassVar[int]
    sent_at: float
    def __init__(self, sent_at: _Optional[float] = ...) -> None: ...

class ContributionChunk(_message.Message):
    __slots__ = ("task_id", "chunk", "receipt")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    RECEIPT_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    chunk: _common_pb2.Chunk
    receipt: bytes
    def __init__(self, task_id: _Optional[str] = ..., chunk: _Optional[_Union[_common_pb2.Chunk, _Mapping]] = ..., receipt: _Optional[bytes] = ...) -> None: ...

class TaskRefusal(_message.Message):
    __slots__ = ("task_id", "reason", "code")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    reason: str
    code: str
    def __init__(self, task_id: _Optional[str] = ..., reason: _Optional[str] = ..., code: _Optional[str] = ...) -> None: ...

class TaskFailure(_message.Message):
    __slots__ = ("task_id", "reason")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    reason: str
    def __init__(self, task_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class GatewayMessage(_message.Message):
    __slots__ = ("registered", "task", "cancel", "notice", "psi")
    REGISTERED_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    CANCEL_FIELD_NUMBER: _ClassVar[int]
    NOTICE_FIELD_NUMBER: _ClassVar[int]
    PSI_FIELD_NUMBER: _ClassVar[int]
    registered: Registered
    task: Task
    cancel: CancelTask
    notice: Notice
    psi: PsiDownload
    def __init__(self, registered: _Optional[_Union[Registered, _Mapping]] = ..., task: _Optional[_Union[Task, _Mapping]] = ..., cancel: _Optional[_Union[CancelTask, _Mapping]] = ..., notice: _Optional[_Union[Notice, _Mapping]] = ..., psi: _Optional[_Union[PsiDownload, _Mapping]] = ...) -> None: ...

class PsiDownload(_message.Message):
    __slots__ = ("task_id", "chunk")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    chunk: _common_pb2.SetChunk
    def __init__(self, task_id: _Optional[str] = ..., chunk: _Optional[_Union[_common_pb2.SetChunk, _Mapping]] = ...) -> None: ...

class Registered(_message.Message):
    __slots__ = ("party", "heartbeat_seconds")
    PARTY_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    party: str
    heartbeat_seconds: int
    def __init__(self, party: _Optional[str] = ..., heartbeat_seconds: _Optional[int] = ...) -> None: ...

class Task(_message.Message):
    __slots__ = ("task_id", "job_id", "buyer", "min_parties", "deadline", "aggregate", "psi", "cached_tables", "signed", "crl", "head")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    BUYER_FIELD_NUMBER: _ClassVar[int]
    MIN_PARTIES_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_FIELD_NUMBER: _ClassVar[int]
    AGGREGATE_FIELD_NUMBER: _ClassVar[int]
    PSI_FIELD_NUMBER: _ClassVar[int]
    CACHED_TABLES_FIELD_NUMBER: _ClassVar[int]
    SIGNED_FIELD_NUMBER: _ClassVar[int]
    CRL_FIELD_NUMBER: _ClassVar[int]
    HEAD_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    job_id: str
    buyer: str
    min_parties: int
    deadline: float
    aggregate: _common_pb2.AggregateSpec
    psi: _common_pb2.PsiSpec
    cached_tables: _containers.RepeatedScalarFieldContainer[str]
    signed: _common_pb2.SignedJob
    crl: bytes
    head: _common_pb2.LedgerHead
    def __init__(self, task_id: _Optional[str] = ..., job_id: _Optional[str] = ..., buyer: _Optional[str] = ..., min_parties: _Optional[int] = ..., deadline: _Optional[float] = ..., aggregate: _Optional[_Union[_common_pb2.AggregateSpec, _Mapping]] = ..., psi: _Optional[_Union[_common_pb2.PsiSpec, _Mapping]] = ..., cached_tables: _Optional[_Iterable[str]] = ..., signed: _Optional[_Union[_common_pb2.SignedJob, _Mapping]] = ..., crl: _Optional[bytes] = ..., head: _Optional[_Union[_common_pb2.LedgerHead, _Mapping]] = ...) -> None: ...

class CancelTask(_message.Message):
    __slots__ = ("task_id", "reason")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    reason: str
    def __init__(self, task_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class Notice(_message.Message):
    __slots__ = ("task_id", "message")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    message: str
    def __init__(self, task_id: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...
