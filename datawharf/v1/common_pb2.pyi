from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Statistic(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STATISTIC_UNSPECIFIED: _ClassVar[Statistic]
    STATISTIC_SUM: _ClassVar[Statistic]
    STATISTIC_COUNT: _ClassVar[Statistic]
    STATISTIC_MEAN: _ClassVar[Statistic]
    STATISTIC_VARIANCE: _ClassVar[Statistic]
    STATISTIC_HISTOGRAM: _ClassVar[Statistic]

class Backend(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BACKEND_UNSPECIFIED: _ClassVar[Backend]
    BACKEND_PAILLIER: _ClassVar[Backend]
    BACKEND_PAILLIER_PACKED: _ClassVar[Backend]
    BACKEND_BFV: _ClassVar[Backend]
    BACKEND_CKKS: _ClassVar[Backend]

class ColumnType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    COLUMN_TYPE_UNSPECIFIED: _ClassVar[ColumnType]
    COLUMN_TYPE_INT: _ClassVar[ColumnType]
    COLUMN_TYPE_DECIMAL: _ClassVar[ColumnType]
    COLUMN_TYPE_STRING: _ClassVar[ColumnType]
    COLUMN_TYPE_VECTOR: _ClassVar[ColumnType]

class Comparison(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    COMPARISON_UNSPECIFIED: _ClassVar[Comparison]
    COMPARISON_EQ: _ClassVar[Comparison]
    COMPARISON_NE: _ClassVar[Comparison]
    COMPARISON_LT: _ClassVar[Comparison]
    COMPARISON_LE: _ClassVar[Comparison]
    COMPARISON_GT: _ClassVar[Comparison]
    COMPARISON_GE: _ClassVar[Comparison]

class PsiMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PSI_MODE_UNSPECIFIED: _ClassVar[PsiMode]
    PSI_MODE_INTERSECTION: _ClassVar[PsiMode]
    PSI_MODE_SUM: _ClassVar[PsiMode]
    PSI_MODE_UNBALANCED: _ClassVar[PsiMode]
STATISTIC_UNSPECIFIED: Statistic
STATISTIC_SUM: Statistic
STATISTIC_COUNT: Statistic
STATISTIC_MEAN: Statistic
STATISTIC_VARIANCE: Statistic
STATISTIC_HISTOGRAM: Statistic
BACKEND_UNSPECIFIED: Backend
BACKEND_PAILLIER: Backend
BACKEND_PAILLIER_PACKED: Backend
BACKEND_BFV: Backend
BACKEND_CKKS: Backend
COLUMN_TYPE_UNSPECIFIED: ColumnType
COLUMN_TYPE_INT: ColumnType
COLUMN_TYPE_DECIMAL: ColumnType
COLUMN_TYPE_STRING: ColumnType
COLUMN_TYPE_VECTOR: ColumnType
COMPARISON_UNSPECIFIED: Comparison
COMPARISON_EQ: Comparison
COMPARISON_NE: Comparison
COMPARISON_LT: Comparison
COMPARISON_LE: Comparison
COMPARISON_GT: Comparison
COMPARISON_GE: Comparison
PSI_MODE_UNSPECIFIED: PsiMode
PSI_MODE_INTERSECTION: PsiMode
PSI_MODE_SUM: PsiMode
PSI_MODE_UNBALANCED: PsiMode

class Condition(_message.Message):
    __slots__ = ("column", "op", "text", "number")
    COLUMN_FIELD_NUMBER: _ClassVar[int]
    OP_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    column: str
    op: Comparison
    text: str
    number: str
    def __init__(self, column: _Optional[str] = ..., op: _Optional[_Union[Comparison, str]] = ..., text: _Optional[str] = ..., number: _Optional[str] = ...) -> None: ...

class Column(_message.Message):
    __slots__ = ("name", "type", "decimals", "dimension", "categories", "join_key", "psi_value", "filter_ops", "group", "aggregate", "identifier", "lower", "upper")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    DECIMALS_FIELD_NUMBER: _ClassVar[int]
    DIMENSION_FIELD_NUMBER: _ClassVar[int]
    CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    JOIN_KEY_FIELD_NUMBER: _ClassVar[int]
    PSI_VALUE_FIELD_NUMBER: _ClassVar[int]
    FILTER_OPS_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    AGGREGATE_FIELD_NUMBER: _ClassVar[int]
    IDENTIFIER_FIELD_NUMBER: _ClassVar[int]
    LOWER_FIELD_NUMBER: _ClassVar[int]
    UPPER_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: ColumnType
    decimals: int
    dimension: int
    categories: _containers.RepeatedScalarFieldContainer[str]
    join_key: bool
    psi_value: bool
    filter_ops: _containers.RepeatedScalarFieldContainer[Comparison]
    group: bool
    aggregate: bool
    identifier: bool
    lower: str
    upper: str
    def __init__(self, name: _Optional[str] = ..., type: _Optional[_Union[ColumnType, str]] = ..., decimals: _Optional[int] = ..., dimension: _Optional[int] = ..., categories: _Optional[_Iterable[str]] = ..., join_key: _Optional[bool] = ..., psi_value: _Optional[bool] = ..., filter_ops: _Optional[_Iterable[_Union[Comparison, str]]] = ..., group: _Optional[bool] = ..., aggregate: _Optional[bool] = ..., identifier: _Optional[bool] = ..., lower: _Optional[str] = ..., upper: _Optional[str] = ...) -> None: ...

class PrivacyTerms(_message.Message):
    __slots__ = ("dp", "budget", "period_days", "max_per_job", "default_per_job", "noise", "list_suppressed")
    DP_FIELD_NUMBER: _ClassVar[int]
    BUDGET_FIELD_NUMBER: _ClassVar[int]
    PERIOD_DAYS_FIELD_NUMBER: _ClassVar[int]
    MAX_PER_JOB_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_PER_JOB_FIELD_NUMBER: _ClassVar[int]
    NOISE_FIELD_NUMBER: _ClassVar[int]
    LIST_SUPPRESSED_FIELD_NUMBER: _ClassVar[int]
    dp: bool
    budget: float
    period_days: float
    max_per_job: float
    default_per_job: float
    noise: str
    list_suppressed: bool
    def __init__(self, dp: _Optional[bool] = ..., budget: _Optional[float] = ..., period_days: _Optional[float] = ..., max_per_job: _Optional[float] = ..., default_per_job: _Optional[float] = ..., noise: _Optional[str] = ..., list_suppressed: _Optional[bool] = ...) -> None: ...

class DatasetListing(_message.Message):
    __slots__ = ("name", "columns", "approx_rows", "description", "min_parties", "privacy", "holders")
    NAME_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    APPROX_ROWS_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    MIN_PARTIES_FIELD_NUMBER: _ClassVar[int]
    PRIVACY_FIELD_NUMBER: _ClassVar[int]
    HOLDERS_FIELD_NUMBER: _ClassVar[int]
    name: str
    columns: _containers.RepeatedCompositeFieldContainer[Column]
    approx_rows: int
    description: str
    min_parties: int
    privacy: PrivacyTerms
    holders: int
    def __init__(self, name: _Optional[str] = ..., columns: _Optional[_Iterable[_Union[Column, _Mapping]]] = ..., approx_rows: _Optional[int] = ..., description: _Optional[str] = ..., min_parties: _Optional[int] = ..., privacy: _Optional[_Union[PrivacyTerms, _Mapping]] = ..., holders: _Optional[int] = ...) -> None: ...

class EncryptionParameters(_message.Message):
    __slots__ = ("backend", "length", "max_contributors", "paillier_n", "slot_bits", "public_context", "poly_modulus_degree", "coeff_mod_bit_sizes", "plain_modulus", "scale_bits", "paillier_modulus_proof")
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    MAX_CONTRIBUTORS_FIELD_NUMBER: _ClassVar[int]
    PAILLIER_N_FIELD_NUMBER: _ClassVar[int]
    SLOT_BITS_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_CONTEXT_FIELD_NUMBER: _ClassVar[int]
    POLY_MODULUS_DEGREE_FIELD_NUMBER: _ClassVar[int]
    COEFF_MOD_BIT_SIZES_FIELD_NUMBER: _ClassVar[int]
    PLAIN_MODULUS_FIELD_NUMBER: _ClassVar[int]
    SCALE_BITS_FIELD_NUMBER: _ClassVar[int]
    PAILLIER_MODULUS_PROOF_FIELD_NUMBER: _ClassVar[int]
    backend: Backend
    length: int
    max_contributors: int
    paillier_n: bytes
    slot_bits: int
    public_context: bytes
    poly_modulus_degree: int
    coeff_mod_bit_sizes: _containers.RepeatedScalarFieldContainer[int]
    plain_modulus: int
    scale_bits: int
    paillier_modulus_proof: bytes
    def __init__(self, backend: _Optional[_Union[Backend, str]] = ..., length: _Optional[int] = ..., max_contributors: _Optional[int] = ..., paillier_n: _Optional[bytes] = ..., slot_bits: _Optional[int] = ..., public_context: _Optional[bytes] = ..., poly_modulus_degree: _Optional[int] = ..., coeff_mod_bit_sizes: _Optional[_Iterable[int]] = ..., plain_modulus: _Optional[int] = ..., scale_bits: _Optional[int] = ..., paillier_modulus_proof: _Optional[bytes] = ...) -> None: ...

class GroupBy(_message.Message):
    __slots__ = ("column", "categories")
    COLUMN_FIELD_NUMBER: _ClassVar[int]
    CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    column: str
    categories: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, column: _Optional[str] = ..., categories: _Optional[_Iterable[str]] = ...) -> None: ...

class AggregateSpec(_message.Message):
    __slots__ = ("dataset", "column", "statistic", "where", "decimals", "encryption", "group_by", "bin_edges", "dimension", "rho")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    COLUMN_FIELD_NUMBER: _ClassVar[int]
    STATISTIC_FIELD_NUMBER: _ClassVar[int]
    WHERE_FIELD_NUMBER: _ClassVar[int]
    DECIMALS_FIELD_NUMBER: _ClassVar[int]
    ENCRYPTION_FIELD_NUMBER: _ClassVar[int]
    GROUP_BY_FIELD_NUMBER: _ClassVar[int]
    BIN_EDGES_FIELD_NUMBER: _ClassVar[int]
    DIMENSION_FIELD_NUMBER: _ClassVar[int]
    RHO_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    column: str
    statistic: Statistic
    where: _containers.RepeatedCompositeFieldContainer[Condition]
    decimals: int
    encryption: EncryptionParameters
    group_by: GroupBy
    bin_edges: _containers.RepeatedScalarFieldContainer[str]
    dimension: int
    rho: float
    def __init__(self, dataset: _Optional[str] = ..., column: _Optional[str] = ..., statistic: _Optional[_Union[Statistic, str]] = ..., where: _Optional[_Iterable[_Union[Condition, _Mapping]]] = ..., decimals: _Optional[int] = ..., encryption: _Optional[_Union[EncryptionParameters, _Mapping]] = ..., group_by: _Optional[_Union[GroupBy, _Mapping]] = ..., bin_edges: _Optional[_Iterable[str]] = ..., dimension: _Optional[int] = ..., rho: _Optional[float] = ...) -> None: ...

class EncryptedFigures(_message.Message):
    __slots__ = ("ciphertexts", "suppressed_groups")
    CIPHERTEXTS_FIELD_NUMBER: _ClassVar[int]
    SUPPRESSED_GROUPS_FIELD_NUMBER: _ClassVar[int]
    ciphertexts: _containers.RepeatedScalarFieldContainer[bytes]
    suppressed_groups: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, ciphertexts: _Optional[_Iterable[bytes]] = ..., suppressed_groups: _Optional[_Iterable[int]] = ...) -> None: ...

class Chunk(_message.Message):
    __slots__ = ("seq", "data", "last")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    LAST_FIELD_NUMBER: _ClassVar[int]
    seq: int
    data: bytes
    last: bool
    def __init__(self, seq: _Optional[int] = ..., data: _Optional[bytes] = ..., last: _Optional[bool] = ...) -> None: ...

class PsiSpec(_message.Message):
    __slots__ = ("dataset", "key_column", "mode", "cardinality_only", "value_columns", "buyer_box_key", "buyer_set_size", "rho", "holders", "at_least")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    KEY_COLUMN_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    CARDINALITY_ONLY_FIELD_NUMBER: _ClassVar[int]
    VALUE_COLUMNS_FIELD_NUMBER: _ClassVar[int]
    BUYER_BOX_KEY_FIELD_NUMBER: _ClassVar[int]
    BUYER_SET_SIZE_FIELD_NUMBER: _ClassVar[int]
    RHO_FIELD_NUMBER: _ClassVar[int]
    HOLDERS_FIELD_NUMBER: _ClassVar[int]
    AT_LEAST_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    key_column: str
    mode: PsiMode
    cardinality_only: bool
    value_columns: _containers.RepeatedScalarFieldContainer[str]
    buyer_box_key: bytes
    buyer_set_size: int
    rho: float
    holders: _containers.RepeatedScalarFieldContainer[str]
    at_least: int
    def __init__(self, dataset: _Optional[str] = ..., key_column: _Optional[str] = ..., mode: _Optional[_Union[PsiMode, str]] = ..., cardinality_only: _Optional[bool] = ..., value_columns: _Optional[_Iterable[str]] = ..., buyer_box_key: _Optional[bytes] = ..., buyer_set_size: _Optional[int] = ..., rho: _Optional[float] = ..., holders: _Optional[_Iterable[str]] = ..., at_least: _Optional[int] = ...) -> None: ...

class SetChunk(_message.Message):
    __slots__ = ("stage", "seq", "data", "last")
    STAGE_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    LAST_FIELD_NUMBER: _ClassVar[int]
    stage: str
    seq: int
    data: bytes
    last: bool
    def __init__(self, stage: _Optional[str] = ..., seq: _Optional[int] = ..., data: _Optional[bytes] = ..., last: _Optional[bool] = ...) -> None: ...

class SignedJob(_message.Message):
    __slots__ = ("body", "signature", "certificate")
    BODY_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    body: bytes
    signature: bytes
    certificate: bytes
    def __init__(self, body: _Optional[bytes] = ..., signature: _Optional[bytes] = ..., certificate: _Optional[bytes] = ...) -> None: ...

class JobBody(_message.Message):
    __slots__ = ("nonce", "buyer", "parties", "min_parties", "signed_at", "aggregate", "psi", "buyer_set_digest")
    NONCE_FIELD_NUMBER: _ClassVar[int]
    BUYER_FIELD_NUMBER: _ClassVar[int]
    PARTIES_FIELD_NUMBER: _ClassVar[int]
    MIN_PARTIES_FIELD_NUMBER: _ClassVar[int]
    SIGNED_AT_FIELD_NUMBER: _ClassVar[int]
    AGGREGATE_FIELD_NUMBER: _ClassVar[int]
    PSI_FIELD_NUMBER: _ClassVar[int]
    BUYER_SET_DIGEST_FIELD_NUMBER: _ClassVar[int]
    nonce: str
    buyer: str
    parties: _containers.RepeatedScalarFieldContainer[str]
    min_parties: int
    signed_at: float
    aggregate: AggregateSpec
    psi: PsiSpec
    buyer_set_digest: bytes
    def __init__(self, nonce: _Optional[str] = ..., buyer: _Optional[str] = ..., parties: _Optional[_Iterable[str]] = ..., min_parties: _Optional[int] = ..., signed_at: _Optional[float] = ..., aggregate: _Optional[_Union[AggregateSpec, _Mapping]] = ..., psi: _Optional[_Union[PsiSpec, _Mapping]] = ..., buyer_set_digest: _Optional[bytes] = ...) -> None: ...

class ContributionReceipt(_message.Message):
    __slots__ = ("party", "certificate", "content_digest", "signature", "stages", "noise")
    PARTY_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_DIGEST_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    STAGES_FIELD_NUMBER: _ClassVar[int]
    NOISE_FIELD_NUMBER: _ClassVar[int]
    party: str
    certificate: bytes
    content_digest: bytes
    signature: bytes
    stages: _containers.RepeatedCompositeFieldContainer[StageDigest]
    noise: NoiseDeclaration
    def __init__(self, party: _Optional[str] = ..., certificate: _Optional[bytes] = ..., content_digest: _Optional[bytes] = ..., signature: _Optional[bytes] = ..., stages: _Optional[_Iterable[_Union[StageDigest, _Mapping]]] = ..., noise: _Optional[_Union[NoiseDeclaration, _Mapping]] = ...) -> None: ...

class NoiseDeclaration(_message.Message):
    __slots__ = ("rho", "part_sd", "remaining", "renews_at", "exact")
    RHO_FIELD_NUMBER: _ClassVar[int]
    PART_SD_FIELD_NUMBER: _ClassVar[int]
    REMAINING_FIELD_NUMBER: _ClassVar[int]
    RENEWS_AT_FIELD_NUMBER: _ClassVar[int]
    EXACT_FIELD_NUMBER: _ClassVar[int]
    rho: float
    part_sd: _containers.RepeatedScalarFieldContainer[float]
    remaining: float
    renews_at: float
    exact: bool
    def __init__(self, rho: _Optional[float] = ..., part_sd: _Optional[_Iterable[float]] = ..., remaining: _Optional[float] = ..., renews_at: _Optional[float] = ..., exact: _Optional[bool] = ...) -> None: ...

class LedgerHead(_message.Message):
    __slots__ = ("seq", "hash", "signature")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    HASH_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    seq: int
    hash: str
    signature: str
    def __init__(self, seq: _Optional[int] = ..., hash: _Optional[str] = ..., signature: _Optional[str] = ...) -> None: ...

class StageDigest(_message.Message):
    __slots__ = ("stage", "digest")
    STAGE_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    stage: str
    digest: bytes
    def __init__(self, stage: _Optional[str] = ..., digest: _Optional[bytes] = ...) -> None: ...
