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

class ColumnType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    COLUMN_TYPE_UNSPECIFIED: _ClassVar[ColumnType]
    COLUMN_TYPE_INT: _ClassVar[ColumnType]
    COLUMN_TYPE_DECIMAL: _ClassVar[ColumnType]
    COLUMN_TYPE_STRING: _ClassVar[ColumnType]

class Comparison(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    COMPARISON_UNSPECIFIED: _ClassVar[Comparison]
    COMPARISON_EQ: _ClassVar[Comparison]
    COMPARISON_NE: _ClassVar[Comparison]
    COMPARISON_LT: _ClassVar[Comparison]
    COMPARISON_LE: _ClassVar[Comparison]
    COMPARISON_GT: _ClassVar[Comparison]
    COMPARISON_GE: _ClassVar[Comparison]
STATISTIC_UNSPECIFIED: Statistic
STATISTIC_SUM: Statistic
STATISTIC_COUNT: Statistic
STATISTIC_MEAN: Statistic
STATISTIC_VARIANCE: Statistic
COLUMN_TYPE_UNSPECIFIED: ColumnType
COLUMN_TYPE_INT: ColumnType
COLUMN_TYPE_DECIMAL: ColumnType
COLUMN_TYPE_STRING: ColumnType
COMPARISON_UNSPECIFIED: Comparison
COMPARISON_EQ: Comparison
COMPARISON_NE: Comparison
COMPARISON_LT: Comparison
COMPARISON_LE: Comparison
COMPARISON_GT: Comparison
COMPARISON_GE: Comparison

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
    __slots__ = ("name", "type", "decimals")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    DECIMALS_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: ColumnType
    decimals: int
    def __init__(self, name: _Optional[str] = ..., type: _Optional[_Union[ColumnType, str]] = ..., decimals: _Optional[int] = ...) -> None: ...

class DatasetListing(_message.Message):
    __slots__ = ("name", "columns", "approx_rows", "description")
    NAME_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    APPROX_ROWS_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    name: str
    columns: _containers.RepeatedCompositeFieldContainer[Column]
    approx_rows: int
    description: str
    def __init__(self, name: _Optional[str] = ..., columns: _Optional[_Iterable[_Union[Column, _Mapping]]] = ..., approx_rows: _Optional[int] = ..., description: _Optional[str] = ...) -> None: ...

class PaillierPublicKey(_message.Message):
    __slots__ = ("n",)
    N_FIELD_NUMBER: _ClassVar[int]
    n: bytes
    def __init__(self, n: _Optional[bytes] = ...) -> None: ...

class AggregateSpec(_message.Message):
    __slots__ = ("dataset", "column", "statistic", "where", "decimals", "public_key")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    COLUMN_FIELD_NUMBER: _ClassVar[int]
    STATISTIC_FIELD_NUMBER: _ClassVar[int]
    WHERE_FIELD_NUMBER: _ClassVar[int]
    DECIMALS_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    column: str
    statistic: Statistic
    where: _containers.RepeatedCompositeFieldContainer[Condition]
    decimals: int
    public_key: PaillierPublicKey
    def __init__(self, dataset: _Optional[str] = ..., column: _Optional[str] = ..., statistic: _Optional[_Union[Statistic, str]] = ..., where: _Optional[_Iterable[_Union[Condition, _Mapping]]] = ..., decimals: _Optional[int] = ..., public_key: _Optional[_Union[PaillierPublicKey, _Mapping]] = ...) -> None: ...

class EncryptedFigures(_message.Message):
    __slots__ = ("ciphertexts",)
    CIPHERTEXTS_FIELD_NUMBER: _ClassVar[int]
    ciphertexts: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, ciphertexts: _Optional[_Iterable[bytes]] = ...) -> None: ...

class Chunk(_message.Message):
    __slots__ = ("seq", "data", "last")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    LAST_FIELD_NUMBER: _ClassVar[int]
    seq: int
    data: bytes
    last: bool
    def __init__(self, seq: _Optional[int] = ..., data: _Optional[bytes] = ..., last: _Optional[bool] = ...) -> None: ...
