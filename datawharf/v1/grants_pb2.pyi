from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GrantState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    GRANT_STATE_UNSPECIFIED: _ClassVar[GrantState]
    GRANT_STATE_PENDING: _ClassVar[GrantState]
    GRANT_STATE_APPROVED: _ClassVar[GrantState]
    GRANT_STATE_REJECTED: _ClassVar[GrantState]
    GRANT_STATE_REVOKED: _ClassVar[GrantState]
GRANT_STATE_UNSPECIFIED: GrantState
GRANT_STATE_PENDING: GrantState
GRANT_STATE_APPROVED: GrantState
GRANT_STATE_REJECTED: GrantState
GRANT_STATE_REVOKED: GrantState

class GrantRequest(_message.Message):
    __slots__ = ("dataset", "parties", "purpose", "statistics", "until", "max_jobs", "budget")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    PARTIES_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    STATISTICS_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    MAX_JOBS_FIELD_NUMBER: _ClassVar[int]
    BUDGET_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    parties: _containers.RepeatedScalarFieldContainer[str]
    purpose: str
    statistics: _containers.RepeatedScalarFieldContainer[str]
    until: float
    max_jobs: int
    budget: float
    def __init__(self, dataset: _Optional[str] = ..., parties: _Optional[_Iterable[str]] = ..., purpose: _Optional[str] = ..., statistics: _Optional[_Iterable[str]] = ..., until: _Optional[float] = ..., max_jobs: _Optional[int] = ..., budget: _Optional[float] = ...) -> None: ...

class ListGrantsRequest(_message.Message):
    __slots__ = ("state",)
    STATE_FIELD_NUMBER: _ClassVar[int]
    state: GrantState
    def __init__(self, state: _Optional[_Union[GrantState, str]] = ...) -> None: ...

class Grant(_message.Message):
    __slots__ = ("id", "buyer", "party", "state", "reason", "requested_at", "decided_at", "terms", "signature", "certificate")
    ID_FIELD_NUMBER: _ClassVar[int]
    BUYER_FIELD_NUMBER: _ClassVar[int]
    PARTY_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_AT_FIELD_NUMBER: _ClassVar[int]
    DECIDED_AT_FIELD_NUMBER: _ClassVar[int]
    TERMS_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    id: str
    buyer: str
    party: str
    state: GrantState
    reason: str
    requested_at: float
    decided_at: float
    terms: bytes
    signature: bytes
    certificate: bytes
    def __init__(self, id: _Optional[str] = ..., buyer: _Optional[str] = ..., party: _Optional[str] = ..., state: _Optional[_Union[GrantState, str]] = ..., reason: _Optional[str] = ..., requested_at: _Optional[float] = ..., decided_at: _Optional[float] = ..., terms: _Optional[bytes] = ..., signature: _Optional[bytes] = ..., certificate: _Optional[bytes] = ...) -> None: ...

class GrantList(_message.Message):
    __slots__ = ("grants",)
    GRANTS_FIELD_NUMBER: _ClassVar[int]
    grants: _containers.RepeatedCompositeFieldContainer[Grant]
    def __init__(self, grants: _Optional[_Iterable[_Union[Grant, _Mapping]]] = ...) -> None: ...

class GrantDecision(_message.Message):
    __slots__ = ("id", "action", "reason", "signature")
    class Action(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        ACTION_UNSPECIFIED: _ClassVar[GrantDecision.Action]
        ACTION_APPROVE: _ClassVar[GrantDecision.Action]
        ACTION_REJECT: _ClassVar[GrantDecision.Action]
        ACTION_REVOKE: _ClassVar[GrantDecision.Action]
    ACTION_UNSPECIFIED: GrantDecision.Action
    ACTION_APPROVE: GrantDecision.Action
    ACTION_REJECT: GrantDecision.Action
    ACTION_REVOKE: GrantDecision.Action
    ID_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    id: str
    action: GrantDecision.Action
    reason: str
    signature: bytes
    def __init__(self, id: _Optional[str] = ..., action: _Optional[_Union[GrantDecision.Action, str]] = ..., reason: _Optional[str] = ..., signature: _Optional[bytes] = ...) -> None: ...
