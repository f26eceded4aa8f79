import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from snowload.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class WorkerState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WORKER_STATE_UNSPECIFIED: _ClassVar[WorkerState]
    WORKER_STATE_IDLE: _ClassVar[WorkerState]
    WORKER_STATE_PREPARING: _ClassVar[WorkerState]
    WORKER_STATE_READY: _ClassVar[WorkerState]
    WORKER_STATE_RUNNING: _ClassVar[WorkerState]
    WORKER_STATE_DRAINING: _ClassVar[WorkerState]
WORKER_STATE_UNSPECIFIED: WorkerState
WORKER_STATE_IDLE: WorkerState
WORKER_STATE_PREPARING: WorkerState
WORKER_STATE_READY: WorkerState
WORKER_STATE_RUNNING: WorkerState
WORKER_STATE_DRAINING: WorkerState

class AttachRequest(_message.Message):
    __slots__ = ("hello", "ack", "ready", "heartbeat", "metrics", "finished", "failure", "pools")
    HELLO_FIELD_NUMBER: _ClassVar[int]
    ACK_FIELD_NUMBER: _ClassVar[int]
    READY_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    FINISHED_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    POOLS_FIELD_NUMBER: _ClassVar[int]
    hello: Hello
    ack: Ack
    ready: Ready
    heartbeat: Heartbeat
    metrics: MetricsReport
    finished: Finished
    failure: Failure
    pools: PoolSample
    def __init__(self, hello: _Optional[_Union[Hello, _Mapping]] = ..., ack: _Optional[_Union[Ack, _Mapping]] = ..., ready: _Optional[_Union[Ready, _Mapping]] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ..., metrics: _Optional[_Union[MetricsReport, _Mapping]] = ..., finished: _Optional[_Union[Finished, _Mapping]] = ..., failure: _Optional[_Union[Failure, _Mapping]] = ..., pools: _Optional[_Union[PoolSample, _Mapping]] = ...) -> None: ...

class AttachResponse(_message.Message):
    __slots__ = ("seq", "welcome", "assign", "set_phase", "start", "set_load", "stop", "pong", "set_pools")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    WELCOME_FIELD_NUMBER: _ClassVar[int]
    ASSIGN_FIELD_NUMBER: _ClassVar[int]
    SET_PHASE_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    SET_LOAD_FIELD_NUMBER: _ClassVar[int]
    STOP_FIELD_NUMBER: _ClassVar[int]
    PONG_FIELD_NUMBER: _ClassVar[int]
    SET_POOLS_FIELD_NUMBER: _ClassVar[int]
    seq: int
    welcome: Welcome
    assign: Assign
    set_phase: SetPhase
    start: Start
    set_load: SetLoad
    stop: Stop
    pong: Pong
    set_pools: SetPools
    def __init__(self, seq: _Optional[int] = ..., welcome: _Optional[_Union[Welcome, _Mapping]] = ..., assign: _Optional[_Union[Assign, _Mapping]] = ..., set_phase: _Optional[_Union[SetPhase, _Mapping]] = ..., start: _Optional[_Union[Start, _Mapping]] = ..., set_load: _Optional[_Union[SetLoad, _Mapping]] = ..., stop: _Optional[_Union[Stop, _Mapping]] = ..., pong: _Optional[_Union[Pong, _Mapping]] = ..., set_pools: _Optional[_Union[SetPools, _Mapping]] = ...) -> None: ...

class Hello(_message.Message):
    __slots__ = ("worker_id", "host", "pid", "version", "capacity", "labels", "run_id", "last_applied_seq", "state", "cpu_count")
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
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    LAST_APPLIED_SEQ_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CPU_COUNT_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    host: str
    pid: int
    version: str
    capacity: int
    labels: _containers.ScalarMap[str, str]
    run_id: str
    last_applied_seq: int
    state: WorkerState
    cpu_count: int
    def __init__(self, worker_id: _Optional[str] = ..., host: _Optional[str] = ..., pid: _Optional[int] = ..., version: _Optional[str] = ..., capacity: _Optional[int] = ..., labels: _Optional[_Mapping[str, str]] = ..., run_id: _Optional[str] = ..., last_applied_seq: _Optional[int] = ..., state: _Optional[_Union[WorkerState, str]] = ..., cpu_count: _Optional[int] = ...) -> None: ...

class Ack(_message.Message):
    __slots__ = ("seq", "applied_time", "state", "lateness")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    APPLIED_TIME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    LATENESS_FIELD_NUMBER: _ClassVar[int]
    seq: int
    applied_time: _timestamp_pb2.Timestamp
    state: WorkerState
    lateness: _duration_pb2.Duration
    def __init__(self, seq: _Optional[int] = ..., applied_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., state: _Optional[_Union[WorkerState, str]] = ..., lateness: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class Ready(_message.Message):
    __slots__ = ("run_id", "connections", "prepare_duration", "ready_time")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    CONNECTIONS_FIELD_NUMBER: _ClassVar[int]
    PREPARE_DURATION_FIELD_NUMBER: _ClassVar[int]
    READY_TIME_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    connections: int
    prepare_duration: _duration_pb2.Duration
    ready_time: _timestamp_pb2.Timestamp
    def __init__(self, run_id: _Optional[str] = ..., connections: _Optional[int] = ..., prepare_duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., ready_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Heartbeat(_message.Message):
    __slots__ = ("send_time", "state", "run_id", "phase", "active_connections", "cpu_percent", "rss_bytes", "last_applied_seq", "clock_offset", "round_trip", "clock_uncertainty")
    SEND_TIME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_CONNECTIONS_FIELD_NUMBER: _ClassVar[int]
    CPU_PERCENT_FIELD_NUMBER: _ClassVar[int]
    RSS_BYTES_FIELD_NUMBER: _ClassVar[int]
    LAST_APPLIED_SEQ_FIELD_NUMBER: _ClassVar[int]
    CLOCK_OFFSET_FIELD_NUMBER: _ClassVar[int]
    ROUND_TRIP_FIELD_NUMBER: _ClassVar[int]
    CLOCK_UNCERTAINTY_FIELD_NUMBER: _ClassVar[int]
    send_time: _timestamp_pb2.Timestamp
    state: WorkerState
    run_id: str
    phase: _common_pb2.State
    active_connections: int
    cpu_percent: float
    rss_bytes: int
    last_applied_seq: int
    clock_offset: _duration_pb2.Duration
    round_trip: _duration_pb2.Duration
    clock_uncertainty: _duration_pb2.Duration
    def __init__(self, send_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., state: _Optional[_Union[WorkerState, str]] = ..., run_id: _Optional[str] = ..., phase: _Optional[_Union[_common_pb2.State, str]] = ..., active_connections: _Optional[int] = ..., cpu_percent: _Optional[float] = ..., rss_bytes: _Optional[int] = ..., last_applied_seq: _Optional[int] = ..., clock_offset: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., round_trip: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., clock_uncertainty: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class ErrorCount(_message.Message):
    __slots__ = ("category", "count", "samples")
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    category: str
    count: int
    samples: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, category: _Optional[str] = ..., count: _Optional[int] = ..., samples: _Optional[_Iterable[str]] = ...) -> None: ...

class KindInterval(_message.Message):
    __slots__ = ("kind", "phase", "count", "errors", "histogram", "service_histogram")
    KIND_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    HISTOGRAM_FIELD_NUMBER: _ClassVar[int]
    SERVICE_HISTOGRAM_FIELD_NUMBER: _ClassVar[int]
    kind: str
    phase: _common_pb2.State
    count: int
    errors: _containers.RepeatedCompositeFieldContainer[ErrorCount]
    histogram: bytes
    service_histogram: bytes
    def __init__(self, kind: _Optional[str] = ..., phase: _Optional[_Union[_common_pb2.State, str]] = ..., count: _Optional[int] = ..., errors: _Optional[_Iterable[_Union[ErrorCount, _Mapping]]] = ..., histogram: _Optional[bytes] = ..., service_histogram: _Optional[bytes] = ...) -> None: ...

class MetricsReport(_message.Message):
    __slots__ = ("run_id", "interval_id", "start_time", "end_time", "send_time", "active_connections", "kinds", "last", "warehouse", "schedule", "status", "first_interval_id", "resent")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_ID_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    SEND_TIME_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_CONNECTIONS_FIELD_NUMBER: _ClassVar[int]
    KINDS_FIELD_NUMBER: _ClassVar[int]
    LAST_FIELD_NUMBER: _ClassVar[int]
    WAREHOUSE_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    FIRST_INTERVAL_ID_FIELD_NUMBER: _ClassVar[int]
    RESENT_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    interval_id: int
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    send_time: _timestamp_pb2.Timestamp
    active_connections: int
    kinds: _containers.RepeatedCompositeFieldContainer[KindInterval]
    last: bool
    warehouse: _common_pb2.WarehouseSample
    schedule: _containers.RepeatedCompositeFieldContainer[PhaseSchedule]
    status: Heartbeat
    first_interval_id: int
    resent: bool
    def __init__(self, run_id: _Optional[str] = ..., interval_id: _Optional[int] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., send_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., active_connections: _Optional[int] = ..., kinds: _Optional[_Iterable[_Union[KindInterval, _Mapping]]] = ..., last: _Optional[bool] = ..., warehouse: _Optional[_Union[_common_pb2.WarehouseSample, _Mapping]] = ..., schedule: _Optional[_Iterable[_Union[PhaseSchedule, _Mapping]]] = ..., status: _Optional[_Union[Heartbeat, _Mapping]] = ..., first_interval_id: _Optional[int] = ..., resent: _Optional[bool] = ...) -> None: ...

class PhaseSchedule(_message.Message):
    __slots__ = ("phase", "lag_histogram", "late", "dropped", "target_rate")
    PHASE_FIELD_NUMBER: _ClassVar[int]
    LAG_HISTOGRAM_FIELD_NUMBER: _ClassVar[int]
    LATE_FIELD_NUMBER: _ClassVar[int]
    DROPPED_FIELD_NUMBER: _ClassVar[int]
    TARGET_RATE_FIELD_NUMBER: _ClassVar[int]
    phase: _common_pb2.State
    lag_histogram: bytes
    late: int
    dropped: int
    target_rate: float
    def __init__(self, phase: _Optional[_Union[_common_pb2.State, str]] = ..., lag_histogram: _Optional[bytes] = ..., late: _Optional[int] = ..., dropped: _Optional[int] = ..., target_rate: _Optional[float] = ...) -> None: ...

class Finished(_message.Message):
    __slots__ = ("run_id", "intervals", "totals", "enrichment", "query_log")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    INTERVALS_FIELD_NUMBER: _ClassVar[int]
    TOTALS_FIELD_NUMBER: _ClassVar[int]
    ENRICHMENT_FIELD_NUMBER: _ClassVar[int]
    QUERY_LOG_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    intervals: int
    totals: _containers.RepeatedCompositeFieldContainer[KindInterval]
    enrichment: _common_pb2.Enrichment
    query_log: QueryLog
    def __init__(self, run_id: _Optional[str] = ..., intervals: _Optional[int] = ..., totals: _Optional[_Iterable[_Union[KindInterval, _Mapping]]] = ..., enrichment: _Optional[_Union[_common_pb2.Enrichment, _Mapping]] = ..., query_log: _Optional[_Union[QueryLog, _Mapping]] = ...) -> None: ...

class QueryLog(_message.Message):
    __slots__ = ("entries", "sample_seen")
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_SEEN_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[_common_pb2.QueryEntry]
    sample_seen: int
    def __init__(self, entries: _Optional[_Iterable[_Union[_common_pb2.QueryEntry, _Mapping]]] = ..., sample_seen: _Optional[int] = ...) -> None: ...

class Failure(_message.Message):
    __slots__ = ("run_id", "reason", "message")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    reason: str
    message: str
    def __init__(self, run_id: _Optional[str] = ..., reason: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class PoolValues(_message.Message):
    __slots__ = ("query_index", "param_index", "values_json", "rows")
    QUERY_INDEX_FIELD_NUMBER: _ClassVar[int]
    PARAM_INDEX_FIELD_NUMBER: _ClassVar[int]
    VALUES_JSON_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    query_index: int
    param_index: int
    values_json: str
    rows: int
    def __init__(self, query_index: _Optional[int] = ..., param_index: _Optional[int] = ..., values_json: _Optional[str] = ..., rows: _Optional[int] = ...) -> None: ...

class PoolSample(_message.Message):
    __slots__ = ("run_id", "pools")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    POOLS_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    pools: _containers.RepeatedCompositeFieldContainer[PoolValues]
    def __init__(self, run_id: _Optional[str] = ..., pools: _Optional[_Iterable[_Union[PoolValues, _Mapping]]] = ...) -> None: ...

class SetPools(_message.Message):
    __slots__ = ("run_id", "pools")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    POOLS_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    pools: _containers.RepeatedCompositeFieldContainer[PoolValues]
    def __init__(self, run_id: _Optional[str] = ..., pools: _Optional[_Iterable[_Union[PoolValues, _Mapping]]] = ...) -> None: ...

class Welcome(_message.Message):
    __slots__ = ("controller_version", "heartbeat_interval", "controller_time")
    CONTROLLER_VERSION_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    CONTROLLER_TIME_FIELD_NUMBER: _ClassVar[int]
    controller_version: str
    heartbeat_interval: _duration_pb2.Duration
    controller_time: _timestamp_pb2.Timestamp
    def __init__(self, controller_version: _Optional[str] = ..., heartbeat_interval: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., controller_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Assign(_message.Message):
    __slots__ = ("run_id", "workload_json", "worker_index", "worker_count", "connections", "rate", "run_setup", "phase", "started", "start_time", "resync", "sequence_slot", "sequence_slots", "plan")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    WORKLOAD_JSON_FIELD_NUMBER: _ClassVar[int]
    WORKER_INDEX_FIELD_NUMBER: _ClassVar[int]
    WORKER_COUNT_FIELD_NUMBER: _ClassVar[int]
    CONNECTIONS_FIELD_NUMBER: _ClassVar[int]
    RATE_FIELD_NUMBER: _ClassVar[int]
    RUN_SETUP_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    STARTED_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    RESYNC_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_SLOT_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_SLOTS_FIELD_NUMBER: _ClassVar[int]
    PLAN_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    workload_json: str
    worker_index: int
    worker_count: int
    connections: int
    rate: float
    run_setup: bool
    phase: _common_pb2.State
    started: bool
    start_time: _timestamp_pb2.Timestamp
    resync: bool
    sequence_slot: int
    sequence_slots: int
    plan: _common_pb2.PhasePlan
    def __init__(self, run_id: _Optional[str] = ..., workload_json: _Optional[str] = ..., worker_index: _Optional[int] = ..., worker_count: _Optional[int] = ..., connections: _Optional[int] = ..., rate: _Optional[float] = ..., run_setup: _Optional[bool] = ..., phase: _Optional[_Union[_common_pb2.State, str]] = ..., started: _Optional[bool] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., resync: _Optional[bool] = ..., sequence_slot: _Optional[int] = ..., sequence_slots: _Optional[int] = ..., plan: _Optional[_Union[_common_pb2.PhasePlan, _Mapping]] = ...) -> None: ...

class SetPhase(_message.Message):
    __slots__ = ("run_id", "phase", "phase_start_time")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    PHASE_START_TIME_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    phase: _common_pb2.State
    phase_start_time: _timestamp_pb2.Timestamp
    def __init__(self, run_id: _Optional[str] = ..., phase: _Optional[_Union[_common_pb2.State, str]] = ..., phase_start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Start(_message.Message):
    __slots__ = ("run_id", "start_time", "plan")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    PLAN_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    start_time: _timestamp_pb2.Timestamp
    plan: _common_pb2.PhasePlan
    def __init__(self, run_id: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., plan: _Optional[_Union[_common_pb2.PhasePlan, _Mapping]] = ...) -> None: ...

class SetLoad(_message.Message):
    __slots__ = ("run_id", "connections", "rate", "apply_time", "decide_time")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    CONNECTIONS_FIELD_NUMBER: _ClassVar[int]
    RATE_FIELD_NUMBER: _ClassVar[int]
    APPLY_TIME_FIELD_NUMBER: _ClassVar[int]
    DECIDE_TIME_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    connections: int
    rate: float
    apply_time: _timestamp_pb2.Timestamp
    decide_time: _timestamp_pb2.Timestamp
    def __init__(self, run_id: _Optional[str] = ..., connections: _Optional[int] = ..., rate: _Optional[float] = ..., apply_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., decide_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Stop(_message.Message):
    __slots__ = ("run_id", "reason", "drain_timeout", "enrich", "enrich_timeout", "measurement_start_time", "measurement_end_time", "expected_queries")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DRAIN_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    ENRICH_FIELD_NUMBER: _ClassVar[int]
    ENRICH_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    MEASUREMENT_START_TIME_FIELD_NUMBER: _ClassVar[int]
    MEASUREMENT_END_TIME_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_QUERIES_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    reason: str
    drain_timeout: _duration_pb2.Duration
    enrich: bool
    enrich_timeout: _duration_pb2.Duration
    measurement_start_time: _timestamp_pb2.Timestamp
    measurement_end_time: _timestamp_pb2.Timestamp
    expected_queries: int
    def __init__(self, run_id: _Optional[str] = ..., reason: _Optional[str] = ..., drain_timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., enrich: _Optional[bool] = ..., enrich_timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., measurement_start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., measurement_end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expected_queries: _Optional[int] = ...) -> None: ...

class Pong(_message.Message):
    __slots__ = ("heartbeat_send_time", "controller_receive_time")
    HEARTBEAT_SEND_TIME_FIELD_NUMBER: _ClassVar[int]
    CONTROLLER_RECEIVE_TIME_FIELD_NUMBER: _ClassVar[int]
    heartbeat_send_time: _timestamp_pb2.Timestamp
    controller_receive_time: _timestamp_pb2.Timestamp
    def __init__(self, heartbeat_send_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., controller_receive_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
