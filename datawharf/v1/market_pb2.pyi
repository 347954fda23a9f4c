from datawharf.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Signed(_message.Message):
    __slots__ = ("body", "signature", "certificate")
    BODY_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    body: bytes
    signature: bytes
    certificate: bytes
    def __init__(self, body: _Optional[bytes] = ..., signature: _Optional[bytes] = ..., certificate: _Optional[bytes] = ...) -> None: ...

class ListingBody(_message.Message):
    __slots__ = ("holder", "dataset", "title", "description", "classification", "personal_data", "price_per_job", "currency", "pricing", "weight", "signed_at")
    HOLDER_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    CLASSIFICATION_FIELD_NUMBER: _ClassVar[int]
    PERSONAL_DATA_FIELD_NUMBER: _ClassVar[int]
    PRICE_PER_JOB_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    PRICING_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    SIGNED_AT_FIELD_NUMBER: _ClassVar[int]
    holder: str
    dataset: _common_pb2.DatasetListing
    title: str
    description: str
    classification: str
    personal_data: bool
    price_per_job: str
    currency: str
    pricing: str
    weight: str
    signed_at: float
    def __init__(self, holder: _Optional[str] = ..., dataset: _Optional[_Union[_common_pb2.DatasetListing, _Mapping]] = ..., title: _Optional[str] = ..., description: _Optional[str] = ..., classification: _Optional[str] = ..., personal_data: _Optional[bool] = ..., price_per_job: _Optional[str] = ..., currency: _Optional[str] = ..., pricing: _Optional[str] = ..., weight: _Optional[str] = ..., signed_at: _Optional[float] = ...) -> None: ...

class DecisionBody(_message.Message):
    __slots__ = ("listing_id", "listing_digest", "action", "text", "reviewer", "signed_at")
    LISTING_ID_FIELD_NUMBER: _ClassVar[int]
    LISTING_DIGEST_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    REVIEWER_FIELD_NUMBER: _ClassVar[int]
    SIGNED_AT_FIELD_NUMBER: _ClassVar[int]
    listing_id: str
    listing_digest: bytes
    action: str
    text: str
    reviewer: str
    signed_at: float
    def __init__(self, listing_id: _Optional[str] = ..., listing_digest: _Optional[bytes] = ..., action: _Optional[str] = ..., text: _Optional[str] = ..., reviewer: _Optional[str] = ..., signed_at: _Optional[float] = ...) -> None: ...

class Decision(_message.Message):
    __slots__ = ("action", "reviewer", "role", "text", "at", "ledger_seq", "signed")
    ACTION_FIELD_NUMBER: _ClassVar[int]
    REVIEWER_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    LEDGER_SEQ_FIELD_NUMBER: _ClassVar[int]
    SIGNED_FIELD_NUMBER: _ClassVar[int]
    action: str
    reviewer: str
    role: str
    text: str
    at: float
    ledger_seq: int
    signed: Signed
    def __init__(self, action: _Optional[str] = ..., reviewer: _Optional[str] = ..., role: _Optional[str] = ..., text: _Optional[str] = ..., at: _Optional[float] = ..., ledger_seq: _Optional[int] = ..., signed: _Optional[_Union[Signed, _Mapping]] = ...) -> None: ...

class MarketListing(_message.Message):
    __slots__ = ("listing_id", "holder", "dataset", "version", "state", "submission", "decisions", "submitted_at", "home_exchange", "ledger_seq", "runnable_here", "availability")
    LISTING_ID_FIELD_NUMBER: _ClassVar[int]
    HOLDER_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    SUBMISSION_FIELD_NUMBER: _ClassVar[int]
    DECISIONS_FIELD_NUMBER: _ClassVar[int]
    SUBMITTED_AT_FIELD_NUMBER: _ClassVar[int]
    HOME_EXCHANGE_FIELD_NUMBER: _ClassVar[int]
    LEDGER_SEQ_FIELD_NUMBER: _ClassVar[int]
    RUNNABLE_HERE_FIELD_NUMBER: _ClassVar[int]
    AVAILABILITY_FIELD_NUMBER: _ClassVar[int]
    listing_id: str
    holder: str
    dataset: str
    version: int
    state: str
    submission: Signed
    decisions: _containers.RepeatedCompositeFieldContainer[Decision]
    submitted_at: float
    home_exchange: str
    ledger_seq: int
    runnable_here: bool
    availability: str
    def __init__(self, listing_id: _Optional[str] = ..., holder: _Optional[str] = ..., dataset: _Optional[str] = ..., version: _Optional[int] = ..., state: _Optional[str] = ..., submission: _Optional[_Union[Signed, _Mapping]] = ..., decisions: _Optional[_Iterable[_Union[Decision, _Mapping]]] = ..., submitted_at: _Optional[float] = ..., home_exchange: _Optional[str] = ..., ledger_seq: _Optional[int] = ..., runnable_here: _Optional[bool] = ..., availability: _Optional[str] = ...) -> None: ...

class ListListingsRequest(_message.Message):
    __slots__ = ("state", "foreign", "listing_id", "limit", "offset")
    STATE_FIELD_NUMBER: _ClassVar[int]
    FOREIGN_FIELD_NUMBER: _ClassVar[int]
    LISTING_ID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    state: str
    foreign: bool
    listing_id: str
    limit: int
    offset: int
    def __init__(self, state: _Optional[str] = ..., foreign: _Optional[bool] = ..., listing_id: _Optional[str] = ..., limit: _Optional[int] = ..., offset: _Optional[int] = ...) -> None: ...

class ListListingsResponse(_message.Message):
    __slots__ = ("listings", "total")
    LISTINGS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    listings: _containers.RepeatedCompositeFieldContainer[MarketListing]
    total: int
    def __init__(self, listings: _Optional[_Iterable[_Union[MarketListing, _Mapping]]] = ..., total: _Optional[int] = ...) -> None: ...

class ImportBundleRequest(_message.Message):
    __slots__ = ("bundle", "ca")
    BUNDLE_FIELD_NUMBER: _ClassVar[int]
    CA_FIELD_NUMBER: _ClassVar[int]
    bundle: bytes
    ca: bytes
    def __init__(self, bundle: _Optional[bytes] = ..., ca: _Optional[bytes] = ...) -> None: ...

class ImportBundleResponse(_message.Message):
    __slots__ = ("home_exchange", "listings")
    HOME_EXCHANGE_FIELD_NUMBER: _ClassVar[int]
    LISTINGS_FIELD_NUMBER: _ClassVar[int]
    home_exchange: str
    listings: _containers.RepeatedCompositeFieldContainer[MarketListing]
    def __init__(self, home_exchange: _Optional[str] = ..., listings: _Optional[_Iterable[_Union[MarketListing, _Mapping]]] = ...) -> None: ...

class StatementRequest(_message.Message):
    __slots__ = ("party", "buyer", "month")
    PARTY_FIELD_NUMBER: _ClassVar[int]
    BUYER_FIELD_NUMBER: _ClassVar[int]
    MONTH_FIELD_NUMBER: _ClassVar[int]
    party: str
    buyer: str
    month: str
    def __init__(self, party: _Optional[str] = ..., buyer: _Optional[str] = ..., month: _Optional[str] = ...) -> None: ...

class ChargeLine(_message.Message):
    __slots__ = ("job_id", "at", "dataset", "buyer", "holder", "kind", "amount", "currency", "ledger_seq")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    BUYER_FIELD_NUMBER: _ClassVar[int]
    HOLDER_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    LEDGER_SEQ_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    at: float
    dataset: str
    buyer: str
    holder: str
    kind: str
    amount: str
    currency: str
    ledger_seq: int
    def __init__(self, job_id: _Optional[str] = ..., at: _Optional[float] = ..., dataset: _Optional[str] = ..., buyer: _Optional[str] = ..., holder: _Optional[str] = ..., kind: _Optional[str] = ..., amount: _Optional[str] = ..., currency: _Optional[str] = ..., ledger_seq: _Optional[int] = ...) -> None: ...

class Amount(_message.Message):
    __slots__ = ("currency", "amount")
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    currency: str
    amount: str
    def __init__(self, currency: _Optional[str] = ..., amount: _Optional[str] = ...) -> None: ...

class Statement(_message.Message):
    __slots__ = ("party", "buyer", "month", "lines", "fees", "totals")
    PARTY_FIELD_NUMBER: _ClassVar[int]
    BUYER_FIELD_NUMBER: _ClassVar[int]
    MONTH_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    FEES_FIELD_NUMBER: _ClassVar[int]
    TOTALS_FIELD_NUMBER: _ClassVar[int]
    party: str
    buyer: str
    month: str
    lines: _containers.RepeatedCompositeFieldContainer[ChargeLine]
    fees: _containers.RepeatedCompositeFieldContainer[ChargeLine]
    totals: _containers.RepeatedCompositeFieldContainer[Amount]
    def __init__(self, party: _Optional[str] = ..., buyer: _Optional[str] = ..., month: _Optional[str] = ..., lines: _Optional[_Iterable[_Union[ChargeLine, _Mapping]]] = ..., fees: _Optional[_Iterable[_Union[ChargeLine, _Mapping]]] = ..., totals: _Optional[_Iterable[_Union[Amount, _Mapping]]] = ...) -> None: ...
