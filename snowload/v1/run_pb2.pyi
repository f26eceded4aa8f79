import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from snowload.v1 import common_pb2 as _common_pb2
from snowload.v1 import control_pb2 as _control_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Run(_message.Message):
    __slots__ = ("run_id", "name", "state", "reason", "message", "mode", "target", "create_time", "start_time", "measurement_start_time", "measurement_end_time", "end_time", "workers", "connections", "warmup", "duration", "summary", "workload_json", "events", "slo", "slo_passed", "enrichment", "run_workers", "error_samples", "server", "degraded", "warnings", "warehouse", "credits", "cost", "find_max", "target_rate", "pools", "plan")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    MEASUREMENT_START_TIME_FIELD_NUMBER: _ClassVar[int]
    MEASUREMENT_END_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    CONNECTIONS_FIELD_NUMBER: _ClassVar[int]
    WARMUP_FIELD_NUMBER: _ClassVar[int]
    DURATION_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    WORKLOAD_JSON_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    SLO_FIELD_NUMBER: _ClassVar[int]
    SLO_PASSED_FIELD_NUMBER: _ClassVar[int]
    ENRICHMENT_FIELD_NUMBER: _ClassVar[int]
    RUN_WORKERS_FIELD_NUMBER: _ClassVar[int]
    ERROR_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    SERVER_FIELD_NUMBER: _ClassVar[int]
    DEGRADED_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    WAREHOUSE_FIELD_NUMBER: _ClassVar[int]
    CREDITS_FIELD_NUMBER: _ClassVar[int]
    COST_FIELD_NUMBER: _ClassVar[int]
    FIND_MAX_FIELD_NUMBER: _ClassVar[int]
    TARGET_RATE_FIELD_NUMBER: _ClassVar[int]
    POOLS_FIELD_NUMBER: _ClassVar[int]
    PLAN_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    name: str
    state: _common_pb2.State
    reason: str
    message: str
    mode: _common_pb2.LoadMode
    target: str
    create_time: _timestamp_pb2.Timestamp
    start_time: _timestamp_pb2.Timestamp
    measurement_start_time: _timestamp_pb2.Timestamp
    measurement_end_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    workers: int
    connections: int
    warmup: _duration_pb2.Duration
    duration: _duration_pb2.Duration
    summary: _common_pb2.RunSummary
    workload_json: str
    events: _containers.RepeatedCompositeFieldContainer[PhaseEvent]
    slo: _containers.RepeatedCompositeFieldContainer[_common_pb2.SloVerdict]
    slo_passed: bool
    enrichment: _common_pb2.EnrichmentStatus
    run_workers: _containers.RepeatedCompositeFieldContainer[RunWorker]
    error_samples: _containers.RepeatedCompositeFieldContainer[ErrorSample]
    server: _common_pb2.Enrichment
    degraded: bool
    warnings: _containers.RepeatedScalarFieldContainer[str]
    warehouse: _common_pb2.WarehouseSample
    credits: float
    cost: float
    find_max: _common_pb2.FindMaxResult
    target_rate: float
    pools: _containers.RepeatedCompositeFieldContainer[_control_pb2.PoolValues]
    plan: _common_pb2.PhasePlan
    def __init__(self, run_id: _Optional[str] = ..., name: _Optional[str] = ..., state: _Optional[_Union[_common_pb2.State, str]] = ..., reason: _Optional[str] = ..., message: _Optional[str] = ..., mode: _Optional[_Union[_common_pb2.LoadMode, str]] = ..., target: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., measurement_start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., measurement_end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., workers: _Optional[int] = ..., connections: _Optional[int] = ..., warmup: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., summary: _Optional[_Union[_common_pb2.RunSummary, _Mapping]] = ..., workload_json: _Optional[str] = ..., events: _Optional[_Iterable[_Union[PhaseEvent, _Mapping]]] = ..., slo: _Optional[_Iterable[_Union[_common_pb2.SloVerdict, _Mapping]]] = ..., slo_passed: _Optional[bool] = ..., enrichment: _Optional[_Union[_common_pb2.EnrichmentStatus, str]] = ..., run_workers: _Optional[_Iterable[_Union[RunWorker, _Mapping]]] = ..., error_samples: _Optional[_Iterable[_Union[ErrorSample, _Mapping]]] = ..., server: _Optional[_Union[_common_pb2.Enrichment, _Mapping]] = ..., degraded: _Optional[bool] = ..., warnings: _Optional[_Iterable[str]] = ..., warehouse: _Optional[_Union[_common_pb2.WarehouseSample, _Mapping]] = ..., credits: _Optional[float] = ..., cost: _Optional[float] = ..., find_max: _Optional[_Union[_common_pb2.FindMaxResult, _Mapping]] = ..., target_rate: _Optional[float] = ..., pools: _Optional[_Iterable[_Union[_control_pb2.PoolValues, _Mapping]]] = ..., plan: _Optional[_Union[_common_pb2.PhasePlan, _Mapping]] = ...) -> None: ...

class RunWorker(_message.Message):
    __slots__ = ("worker_id", "host", "index", "connections", "ready_time", "intervals", "count", "errors", "lost", "clock_offset", "cpu_percent", "rss_bytes", "clock_uncertainty", "max_lateness", "late_commands", "recovered_reports", "duplicate_reports")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    CONNECTIONS_FIELD_NUMBER: _ClassVar[int]
    READY_TIME_FIELD_NUMBER: _ClassVar[int]
    INTERVALS_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    LOST_FIELD_NUMBER: _ClassVar[int]
    CLOCK_OFFSET_FIELD_NUMBER: _ClassVar[int]
    CPU_PERCENT_FIELD_NUMBER: _ClassVar[int]
    RSS_BYTES_FIELD_NUMBER: _ClassVar[int]
    CLOCK_UNCERTAINTY_FIELD_NUMBER: _ClassVar[int]
    MAX_LATENESS_FIELD_NUMBER: _ClassVar[int]
    LATE_COMMANDS_FIELD_NUMBER: _ClassVar[int]
    RECOVERED_REPORTS_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_REPORTS_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    host: str
    index: int
    connections: int
    ready_time: _timestamp_pb2.Timestamp
    intervals: int
    count: int
    errors: int
    lost: bool
    clock_offset: _duration_pb2.Duration
    cpu_percent: float
    rss_bytes: int
    clock_uncertainty: _duration_pb2.Duration
    max_lateness: _duration_pb2.Duration
    late_commands: int
    recovered_reports: int
    duplicate_reports: int
    def __init__(self, worker_id: _Optional[str] = ..., host: _Optional[str] = ..., index: _Optional[int] = ..., connections: _Optional[int] = ..., ready_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., intervals: _Optional[int] = ..., count: _Optional[int] = ..., errors: _Optional[int] = ..., lost: _Optional[bool] = ..., clock_offset: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., cpu_percent: _Optional[float] = ..., rss_bytes: _Optional[int] = ..., clock_uncertainty: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., max_lateness: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., late_commands: _Optional[int] = ..., recovered_reports: _Optional[int] = ..., duplicate_reports: _Optional[int] = ...) -> None: ...

class ErrorSample(_message.Message):
    __slots__ = ("category", "message", "kind")
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    category: str
    message: str
    kind: str
    def __init__(self, category: _Optional[str] = ..., message: _Optional[str] = ..., kind: _Optional[str] = ...) -> None: ...

class GetRunSeriesRequest(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    def __init__(self, run_id: _Optional[str] = ...) -> None: ...

class GetRunSeriesResponse(_message.Message):
    __slots__ = ("points",)
    POINTS_FIELD_NUMBER: _ClassVar[int]
    points: _containers.RepeatedCompositeFieldContainer[_common_pb2.SeriesPoint]
    def __init__(self, points: _Optional[_Iterable[_Union[_common_pb2.SeriesPoint, _Mapping]]] = ...) -> None: ...

class GetRunHistogramsRequest(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    def __init__(self, run_id: _Optional[str] = ...) -> None: ...

class GetRunHistogramsResponse(_message.Message):
    __slots__ = ("phases", "intervals", "kind_intervals")
    PHASES_FIELD_NUMBER: _ClassVar[int]
    INTERVALS_FIELD_NUMBER: _ClassVar[int]
    KIND_INTERVALS_FIELD_NUMBER: _ClassVar[int]
    phases: _containers.RepeatedCompositeFieldContainer[PhaseHistogram]
    intervals: _containers.RepeatedCompositeFieldContainer[IntervalHistogram]
    kind_intervals: _containers.RepeatedCompositeFieldContainer[IntervalHistogram]
    def __init__(self, phases: _Optional[_Iterable[_Union[PhaseHistogram, _Mapping]]] = ..., intervals: _Optional[_Iterable[_Union[IntervalHistogram, _Mapping]]] = ..., kind_intervals: _Optional[_Iterable[_Union[IntervalHistogram, _Mapping]]] = ...) -> None: ...

class PhaseHistogram(_message.Message):
    __slots__ = ("phase", "kind", "histogram")
    PHASE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    HISTOGRAM_FIELD_NUMBER: _ClassVar[int]
    phase: _common_pb2.State
    kind: str
    histogram: bytes
    def __init__(self, phase: _Optional[_Union[_common_pb2.State, str]] = ..., kind: _Optional[str] = ..., histogram: _Optional[bytes] = ...) -> None: ...

class IntervalHistogram(_message.Message):
    __slots__ = ("second", "phase", "start_time", "end_time", "histogram", "kind")
    SECOND_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    HISTOGRAM_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    second: int
    phase: _common_pb2.State
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    histogram: bytes
    kind: str
    def __init__(self, second: _Optional[int] = ..., phase: _Optional[_Union[_common_pb2.State, str]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., histogram: _Optional[bytes] = ..., kind: _Optional[str] = ...) -> None: ...

class PhaseEvent(_message.Message):
    __slots__ = ("state", "event_time", "reason")
    STATE_FIELD_NUMBER: _ClassVar[int]
    EVENT_TIME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    state: _common_pb2.State
    event_time: _timestamp_pb2.Timestamp
    reason: str
    def __init__(self, state: _Optional[_Union[_common_pb2.State, str]] = ..., event_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reason: _Optional[str] = ...) -> None: ...

class StartRunRequest(_message.Message):
    __slots__ = ("workload_toml", "workers", "connections", "warmup", "duration", "source_name")
    WORKLOAD_TOML_FIELD_NUMBER: _ClassVar[int]
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    CONNECTIONS_FIELD_NUMBER: _ClassVar[int]
    WARMUP_FIELD_NUMBER: _ClassVar[int]
    DURATION_FIELD_NUMBER: _ClassVar[int]
    SOURCE_NAME_FIELD_NUMBER: _ClassVar[int]
    workload_toml: str
    workers: int
    connections: int
    warmup: str
    duration: str
    source_name: str
    def __init__(self, workload_toml: _Optional[str] = ..., workers: _Optional[int] = ..., connections: _Optional[int] = ..., warmup: _Optional[str] = ..., duration: _Optional[str] = ..., source_name: _Optional[str] = ...) -> None: ...

class StartRunResponse(_message.Message):
    __slots__ = ("run",)
    RUN_FIELD_NUMBER: _ClassVar[int]
    run: Run
    def __init__(self, run: _Optional[_Union[Run, _Mapping]] = ...) -> None: ...

class StopRunRequest(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    def __init__(self, run_id: _Optional[str] = ...) -> None: ...

class StopRunResponse(_message.Message):
    __slots__ = ("run",)
    RUN_FIELD_NUMBER: _ClassVar[int]
    run: Run
    def __init__(self, run: _Optional[_Union[Run, _Mapping]] = ...) -> None: ...

class GetRunRequest(_message.Message):
    __slots__ = ("run_id", "tag")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    TAG_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    tag: str
    def __init__(self, run_id: _Optional[str] = ..., tag: _Optional[str] = ...) -> None: ...

class GetRunResponse(_message.Message):
    __slots__ = ("run",)
    RUN_FIELD_NUMBER: _ClassVar[int]
    run: Run
    def __init__(self, run: _Optional[_Union[Run, _Mapping]] = ...) -> None: ...

class ListRunsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListRunsResponse(_message.Message):
    __slots__ = ("runs", "next_page_token")
    RUNS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    runs: _containers.RepeatedCompositeFieldContainer[Run]
    next_page_token: str
    def __init__(self, runs: _Optional[_Iterable[_Union[Run, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class WatchRunRequest(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    def __init__(self, run_id: _Optional[str] = ...) -> None: ...

class Progress(_message.Message):
    __slots__ = ("state_elapsed", "run_elapsed", "qps", "p50_ms", "p95_ms", "p99_ms", "errors", "count", "active_connections", "workers_active", "latest", "qps_10s", "qps_30s", "by_kind", "target_level", "phase_overall", "first_errors")
    class ByKindEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _common_pb2.LatencyStats
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[_common_pb2.LatencyStats, _Mapping]] = ...) -> None: ...
    STATE_ELAPSED_FIELD_NUMBER: _ClassVar[int]
    RUN_ELAPSED_FIELD_NUMBER: _ClassVar[int]
    QPS_FIELD_NUMBER: _ClassVar[int]
    P50_MS_FIELD_NUMBER: _ClassVar[int]
    P95_MS_FIELD_NUMBER: _ClassVar[int]
    P99_MS_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_CONNECTIONS_FIELD_NUMBER: _ClassVar[int]
    WORKERS_ACTIVE_FIELD_NUMBER: _ClassVar[int]
    LATEST_FIELD_NUMBER: _ClassVar[int]
    QPS_10S_FIELD_NUMBER: _ClassVar[int]
    QPS_30S_FIELD_NUMBER: _ClassVar[int]
    BY_KIND_FIELD_NUMBER: _ClassVar[int]
    TARGET_LEVEL_FIELD_NUMBER: _ClassVar[int]
    PHASE_OVERALL_FIELD_NUMBER: _ClassVar[int]
    FIRST_ERRORS_FIELD_NUMBER: _ClassVar[int]
    state_elapsed: _duration_pb2.Duration
    run_elapsed: _duration_pb2.Duration
    qps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    errors: int
    count: int
    active_connections: int
    workers_active: int
    latest: _common_pb2.SeriesPoint
    qps_10s: float
    qps_30s: float
    by_kind: _containers.MessageMap[str, _common_pb2.LatencyStats]
    target_level: float
    phase_overall: _common_pb2.LatencyStats
    first_errors: _containers.RepeatedCompositeFieldContainer[ErrorSample]
    def __init__(self, state_elapsed: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., run_elapsed: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., qps: _Optional[float] = ..., p50_ms: _Optional[float] = ..., p95_ms: _Optional[float] = ..., p99_ms: _Optional[float] = ..., errors: _Optional[int] = ..., count: _Optional[int] = ..., active_connections: _Optional[int] = ..., workers_active: _Optional[int] = ..., latest: _Optional[_Union[_common_pb2.SeriesPoint, _Mapping]] = ..., qps_10s: _Optional[float] = ..., qps_30s: _Optional[float] = ..., by_kind: _Optional[_Mapping[str, _common_pb2.LatencyStats]] = ..., target_level: _Optional[float] = ..., phase_overall: _Optional[_Union[_common_pb2.LatencyStats, _Mapping]] = ..., first_errors: _Optional[_Iterable[_Union[ErrorSample, _Mapping]]] = ...) -> None: ...

class WatchRunResponse(_message.Message):
    __slots__ = ("run", "progress", "workers", "final")
    RUN_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    FINAL_FIELD_NUMBER: _ClassVar[int]
    run: Run
    progress: Progress
    workers: _containers.RepeatedCompositeFieldContainer[WorkerInfo]
    final: bool
    def __init__(self, run: _Optional[_Union[Run, _Mapping]] = ..., progress: _Optional[_Union[Progress, _Mapping]] = ..., workers: _Optional[_Iterable[_Union[WorkerInfo, _Mapping]]] = ..., final: _Optional[bool] = ...) -> None: ...

class ListWorkersRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WorkerInfo(_message.Message):
    __slots__ = ("worker_id", "host", "pid", "version", "state", "run_id", "capacity", "connected", "heartbeat_age", "active_connections", "cpu_percent", "rss_bytes", "clock_offset", "attach_time", "labels", "clock_uncertainty")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    CONNECTED_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_AGE_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_CONNECTIONS_FIELD_NUMBER: _ClassVar[int]
    CPU_PERCENT_FIELD_NUMBER: _ClassVar[int]
    RSS_BYTES_FIELD_NUMBER: _ClassVar[int]
    CLOCK_OFFSET_FIELD_NUMBER: _ClassVar[int]
    ATTACH_TIME_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    CLOCK_UNCERTAINTY_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    host: str
    pid: int
    version: str
    state: _control_pb2.WorkerState
    run_id: str
    capacity: int
    connected: bool
    heartbeat_age: _duration_pb2.Duration
    active_connections: int
    cpu_percent: float
    rss_bytes: int
    clock_offset: _duration_pb2.Duration
    attach_time: _timestamp_pb2.Timestamp
    labels: _containers.ScalarMap[str, str]
    clock_uncertainty: _duration_pb2.Duration
    def __init__(self, worker_id: _Optional[str] = ..., host: _Optional[str] = ..., pid: _Optional[int] = ..., version: _Optional[str] = ..., state: _Optional[_Union[_control_pb2.WorkerState, str]] = ..., run_id: _Optional[str] = ..., capacity: _Optional[int] = ..., connected: _Optional[bool] = ..., heartbeat_age: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., active_connections: _Optional[int] = ..., cpu_percent: _Optional[float] = ..., rss_bytes: _Optional[int] = ..., clock_offset: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., attach_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., labels: _Optional[_Mapping[str, str]] = ..., clock_uncertainty: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class ListWorkersResponse(_message.Message):
    __slots__ = ("workers",)
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    workers: _containers.RepeatedCompositeFieldContainer[WorkerInfo]
    def __init__(self, workers: _Optional[_Iterable[_Union[WorkerInfo, _Mapping]]] = ...) -> None: ...

class GetRunQueriesRequest(_message.Message):
    __slots__ = ("run_id", "kind", "phase", "slowest", "errors", "page_size", "page_token")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    SLOWEST_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    kind: str
    phase: _common_pb2.State
    slowest: int
    errors: bool
    page_size: int
    page_token: str
    def __init__(self, run_id: _Optional[str] = ..., kind: _Optional[str] = ..., phase: _Optional[_Union[_common_pb2.State, str]] = ..., slowest: _Optional[int] = ..., errors: _Optional[bool] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class GetRunQueriesResponse(_message.Message):
    __slots__ = ("entries", "next_page_token")
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[_common_pb2.QueryEntry]
    next_page_token: str
    def __init__(self, entries: _Optional[_Iterable[_Union[_common_pb2.QueryEntry, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class TagRunRequest(_message.Message):
    __slots__ = ("run_id", "tag")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    TAG_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    tag: str
    def __init__(self, run_id: _Optional[str] = ..., tag: _Optional[str] = ...) -> None: ...

class TagRunResponse(_message.Message):
    __slots__ = ("run",)
    RUN_FIELD_NUMBER: _ClassVar[int]
    run: Run
    def __init__(self, run: _Optional[_Union[Run, _Mapping]] = ...) -> None: ...
