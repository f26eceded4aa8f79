import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
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

class EnrichmentStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ENRICHMENT_STATUS_UNSPECIFIED: _ClassVar[EnrichmentStatus]
    ENRICHMENT_STATUS_PENDING: _ClassVar[EnrichmentStatus]
    ENRICHMENT_STATUS_COMPLETED: _ClassVar[EnrichmentStatus]
    ENRICHMENT_STATUS_FAILED: _ClassVar[EnrichmentStatus]
    ENRICHMENT_STATUS_SKIPPED: _ClassVar[EnrichmentStatus]
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
ENRICHMENT_STATUS_UNSPECIFIED: EnrichmentStatus
ENRICHMENT_STATUS_PENDING: EnrichmentStatus
ENRICHMENT_STATUS_COMPLETED: EnrichmentStatus
ENRICHMENT_STATUS_FAILED: EnrichmentStatus
ENRICHMENT_STATUS_SKIPPED: EnrichmentStatus

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
    __slots__ = ("phase", "duration", "overall", "by_kind", "errors_by_category", "service", "lag", "late", "dropped", "target_rate", "achieved_rate")
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
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    LAG_FIELD_NUMBER: _ClassVar[int]
    LATE_FIELD_NUMBER: _ClassVar[int]
    DROPPED_FIELD_NUMBER: _ClassVar[int]
    TARGET_RATE_FIELD_NUMBER: _ClassVar[int]
    ACHIEVED_RATE_FIELD_NUMBER: _ClassVar[int]
    phase: State
    duration: _duration_pb2.Duration
    overall: LatencyStats
    by_kind: _containers.MessageMap[str, LatencyStats]
    errors_by_category: _containers.ScalarMap[str, int]
    service: LatencyStats
    lag: LatencyStats
    late: int
    dropped: int
    target_rate: float
    achieved_rate: float
    def __init__(self, phase: _Optional[_Union[State, str]] = ..., duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., overall: _Optional[_Union[LatencyStats, _Mapping]] = ..., by_kind: _Optional[_Mapping[str, LatencyStats]] = ..., errors_by_category: _Optional[_Mapping[str, int]] = ..., service: _Optional[_Union[LatencyStats, _Mapping]] = ..., lag: _Optional[_Union[LatencyStats, _Mapping]] = ..., late: _Optional[int] = ..., dropped: _Optional[int] = ..., target_rate: _Optional[float] = ..., achieved_rate: _Optional[float] = ...) -> None: ...

class FindMaxStep(_message.Message):
    __slots__ = ("level", "stats", "error_rate", "verdict", "reason", "start_time", "end_time")
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    STATS_FIELD_NUMBER: _ClassVar[int]
    ERROR_RATE_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    level: float
    stats: LatencyStats
    error_rate: float
    verdict: str
    reason: str
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    def __init__(self, level: _Optional[float] = ..., stats: _Optional[_Union[LatencyStats, _Mapping]] = ..., error_rate: _Optional[float] = ..., verdict: _Optional[str] = ..., reason: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class FindMaxResult(_message.Message):
    __slots__ = ("steps", "by", "concluded", "best_level", "best", "reason")
    STEPS_FIELD_NUMBER: _ClassVar[int]
    BY_FIELD_NUMBER: _ClassVar[int]
    CONCLUDED_FIELD_NUMBER: _ClassVar[int]
    BEST_LEVEL_FIELD_NUMBER: _ClassVar[int]
    BEST_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    steps: _containers.RepeatedCompositeFieldContainer[FindMaxStep]
    by: str
    concluded: bool
    best_level: float
    best: LatencyStats
    reason: str
    def __init__(self, steps: _Optional[_Iterable[_Union[FindMaxStep, _Mapping]]] = ..., by: _Optional[str] = ..., concluded: _Optional[bool] = ..., best_level: _Optional[float] = ..., best: _Optional[_Union[LatencyStats, _Mapping]] = ..., reason: _Optional[str] = ...) -> None: ...

class RunSummary(_message.Message):
    __slots__ = ("phases",)
    PHASES_FIELD_NUMBER: _ClassVar[int]
    phases: _containers.RepeatedCompositeFieldContainer[PhaseSummary]
    def __init__(self, phases: _Optional[_Iterable[_Union[PhaseSummary, _Mapping]]] = ...) -> None: ...

class SeriesPoint(_message.Message):
    __slots__ = ("second", "phase", "end_time", "duration", "overall", "by_kind", "errors_by_category", "active_connections", "workers_active", "warehouse", "target_rate", "lag_p99_ms", "late", "dropped", "service_p99_ms", "partial")
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
    SECOND_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    DURATION_FIELD_NUMBER: _ClassVar[int]
    OVERALL_FIELD_NUMBER: _ClassVar[int]
    BY_KIND_FIELD_NUMBER: _ClassVar[int]
    ERRORS_BY_CATEGORY_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_CONNECTIONS_FIELD_NUMBER: _ClassVar[int]
    WORKERS_ACTIVE_FIELD_NUMBER: _ClassVar[int]
    WAREHOUSE_FIELD_NUMBER: _ClassVar[int]
    TARGET_RATE_FIELD_NUMBER: _ClassVar[int]
    LAG_P99_MS_FIELD_NUMBER: _ClassVar[int]
    LATE_FIELD_NUMBER: _ClassVar[int]
    DROPPED_FIELD_NUMBER: _ClassVar[int]
    SERVICE_P99_MS_FIELD_NUMBER: _ClassVar[int]
    PARTIAL_FIELD_NUMBER: _ClassVar[int]
    second: int
    phase: State
    end_time: _timestamp_pb2.Timestamp
    duration: _duration_pb2.Duration
    overall: LatencyStats
    by_kind: _containers.MessageMap[str, LatencyStats]
    errors_by_category: _containers.ScalarMap[str, int]
    active_connections: int
    workers_active: int
    warehouse: WarehouseSample
    target_rate: float
    lag_p99_ms: float
    late: int
    dropped: int
    service_p99_ms: float
    partial: bool
    def __init__(self, second: _Optional[int] = ..., phase: _Optional[_Union[State, str]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., overall: _Optional[_Union[LatencyStats, _Mapping]] = ..., by_kind: _Optional[_Mapping[str, LatencyStats]] = ..., errors_by_category: _Optional[_Mapping[str, int]] = ..., active_connections: _Optional[int] = ..., workers_active: _Optional[int] = ..., warehouse: _Optional[_Union[WarehouseSample, _Mapping]] = ..., target_rate: _Optional[float] = ..., lag_p99_ms: _Optional[float] = ..., late: _Optional[int] = ..., dropped: _Optional[int] = ..., service_p99_ms: _Optional[float] = ..., partial: _Optional[bool] = ...) -> None: ...

class WarehouseSample(_message.Message):
    __slots__ = ("name", "size", "state", "min_cluster_count", "max_cluster_count", "started_clusters", "running", "queued", "sample_time")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    MIN_CLUSTER_COUNT_FIELD_NUMBER: _ClassVar[int]
    MAX_CLUSTER_COUNT_FIELD_NUMBER: _ClassVar[int]
    STARTED_CLUSTERS_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    QUEUED_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    size: str
    state: str
    min_cluster_count: int
    max_cluster_count: int
    started_clusters: int
    running: int
    queued: int
    sample_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., size: _Optional[str] = ..., state: _Optional[str] = ..., min_cluster_count: _Optional[int] = ..., max_cluster_count: _Optional[int] = ..., started_clusters: _Optional[int] = ..., running: _Optional[int] = ..., queued: _Optional[int] = ..., sample_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ServerTiming(_message.Message):
    __slots__ = ("kind", "phase", "calls", "total", "compilation", "execution", "queued", "blocked", "mean_ms", "stddev_ms", "app_overhead", "matched")
    KIND_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    CALLS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    COMPILATION_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_FIELD_NUMBER: _ClassVar[int]
    QUEUED_FIELD_NUMBER: _ClassVar[int]
    BLOCKED_FIELD_NUMBER: _ClassVar[int]
    MEAN_MS_FIELD_NUMBER: _ClassVar[int]
    STDDEV_MS_FIELD_NUMBER: _ClassVar[int]
    APP_OVERHEAD_FIELD_NUMBER: _ClassVar[int]
    MATCHED_FIELD_NUMBER: _ClassVar[int]
    kind: str
    phase: State
    calls: int
    total: LatencyStats
    compilation: LatencyStats
    execution: LatencyStats
    queued: LatencyStats
    blocked: LatencyStats
    mean_ms: float
    stddev_ms: float
    app_overhead: LatencyStats
    matched: int
    def __init__(self, kind: _Optional[str] = ..., phase: _Optional[_Union[State, str]] = ..., calls: _Optional[int] = ..., total: _Optional[_Union[LatencyStats, _Mapping]] = ..., compilation: _Optional[_Union[LatencyStats, _Mapping]] = ..., execution: _Optional[_Union[LatencyStats, _Mapping]] = ..., queued: _Optional[_Union[LatencyStats, _Mapping]] = ..., blocked: _Optional[_Union[LatencyStats, _Mapping]] = ..., mean_ms: _Optional[float] = ..., stddev_ms: _Optional[float] = ..., app_overhead: _Optional[_Union[LatencyStats, _Mapping]] = ..., matched: _Optional[int] = ...) -> None: ...

class Enrichment(_message.Message):
    __slots__ = ("status", "message", "timings")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    status: EnrichmentStatus
    message: str
    timings: _containers.RepeatedCompositeFieldContainer[ServerTiming]
    def __init__(self, status: _Optional[_Union[EnrichmentStatus, str]] = ..., message: _Optional[str] = ..., timings: _Optional[_Iterable[_Union[ServerTiming, _Mapping]]] = ...) -> None: ...

class SloVerdict(_message.Message):
    __slots__ = ("kind", "metric", "limit", "actual", "passed")
    KIND_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    ACTUAL_FIELD_NUMBER: _ClassVar[int]
    PASSED_FIELD_NUMBER: _ClassVar[int]
    kind: str
    metric: str
    limit: float
    actual: float
    passed: bool
    def __init__(self, kind: _Optional[str] = ..., metric: _Optional[str] = ..., limit: _Optional[float] = ..., actual: _Optional[float] = ..., passed: _Optional[bool] = ...) -> None: ...

class PhasePlan(_message.Message):
    __slots__ = ("load_start_time", "measurement_start_time", "measurement_end_time", "decide_time")
    LOAD_START_TIME_FIELD_NUMBER: _ClassVar[int]
    MEASUREMENT_START_TIME_FIELD_NUMBER: _ClassVar[int]
    MEASUREMENT_END_TIME_FIELD_NUMBER: _ClassVar[int]
    DECIDE_TIME_FIELD_NUMBER: _ClassVar[int]
    load_start_time: _timestamp_pb2.Timestamp
    measurement_start_time: _timestamp_pb2.Timestamp
    measurement_end_time: _timestamp_pb2.Timestamp
    decide_time: _timestamp_pb2.Timestamp
    def __init__(self, load_start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., measurement_start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., measurement_end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., decide_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class QueryEntry(_message.Message):
    __slots__ = ("entry_id", "kind", "phase", "worker", "connection", "start_time", "latency_ms", "params_json", "server_id", "error", "error_category", "slowest", "sampled")
    ENTRY_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    WORKER_FIELD_NUMBER: _ClassVar[int]
    CONNECTION_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    PARAMS_JSON_FIELD_NUMBER: _ClassVar[int]
    SERVER_ID_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ERROR_CATEGORY_FIELD_NUMBER: _ClassVar[int]
    SLOWEST_FIELD_NUMBER: _ClassVar[int]
    SAMPLED_FIELD_NUMBER: _ClassVar[int]
    entry_id: int
    kind: str
    phase: State
    worker: str
    connection: int
    start_time: _timestamp_pb2.Timestamp
    latency_ms: float
    params_json: str
    server_id: str
    error: str
    error_category: str
    slowest: bool
    sampled: bool
    def __init__(self, entry_id: _Optional[int] = ..., kind: _Optional[str] = ..., phase: _Optional[_Union[State, str]] = ..., worker: _Optional[str] = ..., connection: _Optional[int] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., latency_ms: _Optional[float] = ..., params_json: _Optional[str] = ..., server_id: _Optional[str] = ..., error: _Optional[str] = ..., error_category: _Optional[str] = ..., slowest: _Optional[bool] = ..., sampled: _Optional[bool] = ...) -> None: ...
