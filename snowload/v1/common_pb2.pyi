import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STATE_UNSPECIFIED: _ClassVar[State]
    STATE_PENDING: _ClassVar[State]
    STATE_PREPARING: _ClassVar[State]
    STATE_WARMUP: _ClassVar[State]
    STATE_MEASUREMENT: _ClassVar[State]
    STATE_PROCESSING: _ClassVar[State]
    STATE_COMPLETED: _ClassVar[State]
    STATE_FAILED: _ClassVar[State]
    STATE_CANCELLED: _ClassVar[State]

class LoadMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LOAD_MODE_UNSPECIFIED: _ClassVar[LoadMode]
    LOAD_MODE_CLOSED: _ClassVar[LoadMode]
    LOAD_MODE_OPEN: _ClassVar[LoadMode]
    LOAD_MODE_FIND_MAX: _ClassVar[LoadMode]
STATE_UNSPECIFIED: State
STATE_PENDING: State
STATE_PREPARING: State
STATE_WARMUP: State
STATE_MEASUREMENT: State
STATE_PROCESSING: State
STATE_COMPLETED: State
STATE_FAILED: State
STATE_CANCELLED: State
LOAD_MODE_UNSPECIFIED: LoadMode
LOAD_MODE_CLOSED: LoadMode
LOAD_MODE_OPEN: LoadMode
LOAD_MODE_FIND_MAX: LoadMode

class LatencyStats(_message.Message):
    __slots__ = ("count", "errors", "qps", "p50_ms", "p95_ms", "p99_ms", "max_ms", "mean_ms", "min_ms")
    COUNT_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    QPS_FIELD_NUMBER: _ClassVar[int]
    P50_MS_FIELD_NUMBER: _ClassVar[int]
    P95_MS_FIELD_NUMBER: _ClassVar[int]
    P99_MS_FIELD_NUMBER: _ClassVar[int]
    MAX_MS_FIELD_NUMBER: _ClassVar[int]
    MEAN_MS_FIELD_NUMBER: _ClassVar[int]
    MIN_MS_FIELD_NUMBER: _ClassVar[int]
    count: int
    errors: int
    qps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float
    min_ms: float
    def __init__(self, count: _Optional[int] = ..., errors: _Optional[int] = ..., qps: _Optional[float] = ..., p50_ms: _Optional[float] = ..., p95_ms: _Optional[float] = ..., p99_ms: _Optional[float] = ..., max_ms: _Optional[float] = ..., mean_ms: _Optional[float] = ..., min_ms: _Optional[float] = ...) -> None: ...

class PhaseSummary(_message.Message):
    __slots__ = ("phase", "duration", "overall", "by_kind", "errors_by_category")
    class ByKindEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: LatencyStats
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[LatencyStats, _Mapping]] = ...) -> None: ...
    class ErrorsByCategoryEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    PHASE_FIELD_NUMBER: _ClassVar[int]
    DURATION_FIELD_NUMBER: _ClassVar[int]
    OVERALL_FIELD_NUMBER: _ClassVar[int]
    BY_KIND_FIELD_NUMBER: _ClassVar[int]
    ERRORS_BY_CATEGORY_FIELD_NUMBER: _ClassVar[int]
    phase: State
    duration: _duration_pb2.Duration
    overall: LatencyStats
    by_kind: _containers.MessageMap[str, LatencyStats]
    errors_by_category: _containers.ScalarMap[str, int]
    def __init__(self, phase: _Optional[_Union[State, str]] = ..., duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., overall: _Optional[_Union[LatencyStats, _Mapping]] = ..., by_kind: _Optional[_Mapping[str, LatencyStats]] = ..., errors_by_category: _Optional[_Mapping[str, int]] = ...) -> None: ...

class RunSummary(_message.Message):
    __slots__ = ("phases",)
    PHASES_FIELD_NUMBER: _ClassVar[int]
    phases: _containers.RepeatedCompositeFieldContainer[PhaseSummary]
    def __init__(self, phases: _Optional[_Iterable[_Union[PhaseSummary, _Mapping]]] = ...) -> None: ...
