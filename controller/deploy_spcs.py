"""``snowload deploy spcs``: the service specifications and the SQL that runs snowload in
Snowpark Container Services (pure: no connection here; controller/deploy_spcs_execute.py
runs the statements).

- SNOWLOAD_CONTROLLER: one instance; the gRPC endpoint on the service network (not
  public); the results database on a block-storage volume.
- SNOWLOAD_WORKERS: MIN_INSTANCES = MAX_INSTANCES = N, each dialing the controller's
  service DNS name; they log in to Snowflake as the service (``connection = "spcs"``).
- SNOWLOAD_RUN_<WORKLOAD> (``--run``): a job service running ``snowload run`` with the
  workload from a stage-mounted volume; the container exits with the run's exit code, so
  the job fails exactly when the run does.

The controller's bearer token comes from a Snowflake secret (``SNOWLOAD_TOKEN``), created
once by the user (deploy/README.md); the statements never carry it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import yaml

from controller.deploy_image import check_spcs_image

CONTROLLER = "SNOWLOAD_CONTROLLER"
WORKERS = "SNOWLOAD_WORKERS"
STAGE = "SNOWLOAD_WORKLOADS"
TOKEN_SECRET = "SNOWLOAD_TOKEN"
PORT = 7070
RESULTS_DIR = "/data"
WORKLOAD_DIR = "/workloads"
RESULTS_VOLUME_GI = 10
WAIT_S = 900
RUN_UID = 10001
"""The image's user (deploy/Containerfile): stage files are mounted as its own."""
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,254}$")


class StatementKind(Enum):
    CREATE_SERVICE = "create service"
    CREATE_STAGE = "create stage"
    UPLOAD = "upload"
    WAIT = "wait"
    DROP = "drop"
    EXECUTE_JOB = "execute job"


@dataclass(frozen=True)
class Statement:
    kind: StatementKind
    sql: str
    service: str = ""
    """The service it creates, waits for or drops (empty for the stage and the upload)."""


@dataclass(frozen=True)
class SpcsDeployment:
    compute_pool: str
    image: str
    workers: int
    warehouse: str = ""
    workload: Path | None = None
    """A local workload file for ``--run`` (uploaded to the stage)."""

    def __post_init__(self) -> None:
        check_spcs_image(self.image)
        for option, value in (
            ("--compute-pool", self.compute_pool),
            ("--warehouse", self.warehouse),
        ):
            if value and not _IDENTIFIER.match(value):
                raise ValueError(f"{option} {value!r} is not a Snowflake identifier")
        if not self.compute_pool:
            raise ValueError("--compute-pool is required")
        if self.workers < 1:
            raise ValueError(f"--workers must be at least 1, got {self.workers}")

    @property
    def controller_host(self) -> str:
        """The controller's DNS name on the service network (same database and schema)."""
        return CONTROLLER.lower().replace("_", "-")

    @property
    def job(self) -> str:
        return job_name(self.workload)

    @property
    def services(self) -> tuple[str, ...]:
        """What ``--down`` drops, in dropping order."""
        return services(self.workload)


def job_name(workload: Path | None) -> str:
    """The job service of ``--run WORKLOAD`` ("" without one): named after the file alone."""
    if workload is None:
        return ""
    stem = re.sub(r"[^A-Za-z0-9]+", "_", workload.stem).strip("_").upper()
    return f"SNOWLOAD_RUN_{stem or 'WORKLOAD'}"[:255]


def services(workload: Path | None) -> tuple[str, ...]:
    """The services of a deployment (with the job of ``workload``), in dropping order."""
    job = job_name(workload)
    return (*([job] if job else []), WORKERS, CONTROLLER)


def token_secret() -> dict[str, Any]:
    return {
        "snowflakeSecret": {"objectName": TOKEN_SECRET},
        "secretKeyRef": "secret_string",
        "envVarName": "SNOWLOAD_TOKEN",
    }


def controller_spec(d: SpcsDeployment) -> dict[str, Any]:
    return {
        "spec": {
            "containers": [
                {
                    "name": "controller",
                    "image": d.image,
                    "args": [
                        "controller",
                        "--listen",
                        f"0.0.0.0:{PORT}",
                        "--db",
                        f"{RESULTS_DIR}/results.db",
                    ],
                    "secrets": [token_secret()],
                    "volumeMounts": [{"name": "results", "mountPath": RESULTS_DIR}],
                    "resources": {
                        "requests": {"cpu": 0.5, "memory": "512Mi"},
                        "limits": {"memory": "2Gi"},
                    },
                }
            ],
            "endpoints": [{"name": "grpc", "port": PORT, "protocol": "TCP", "public": False}],
            "volumes": [{"name": "results", "source": "block", "size": f"{RESULTS_VOLUME_GI}Gi"}],
        }
    }


def workers_spec(d: SpcsDeployment) -> dict[str, Any]:
    return {
        "spec": {
            "containers": [
                {
                    "name": "worker",
                    "image": d.image,
                    "args": [
                        "worker",
                        "--controller",
                        f"{d.controller_host}:{PORT}",
                        "--capacity",
                        "64",
                    ],
                    "secrets": [token_secret()],
                    "resources": {
                        "requests": {"cpu": 1, "memory": "512Mi"},
                        "limits": {"cpu": 1, "memory": "2Gi"},
                    },
                }
            ]
        }
    }


def job_spec(d: SpcsDeployment) -> dict[str, Any]:
    assert d.workload is not None
    return {
        "spec": {
            "containers": [
                {
                    "name": "run",
                    "image": d.image,
                    "args": [
                        "run",
                        f"{WORKLOAD_DIR}/{d.workload.name}",
                        "--controller",
                        f"{d.controller_host}:{PORT}",
                        "--json",
                    ],
                    "secrets": [token_secret()],
                    "volumeMounts": [{"name": "workloads", "mountPath": WORKLOAD_DIR}],
                }
            ],
            "volumes": [
                {"name": "workloads", "source": f"@{STAGE}", "uid": RUN_UID, "gid": RUN_UID}
            ],
        }
    }


def spec_text(spec: dict[str, Any]) -> str:
    text = str(yaml.safe_dump(spec, sort_keys=False, default_flow_style=False))
    if "$$" in text:  # (it ends the specification's literal)
        raise ValueError("a specification cannot contain '$$'")
    return text


def _with_spec(head: str, spec: dict[str, Any], tail: list[str]) -> str:
    return "\n".join([head, "FROM SPECIFICATION $$", spec_text(spec).rstrip("\n"), "$$", *tail])


def up(d: SpcsDeployment, *, reuse: bool = False) -> list[Statement]:
    """Every statement of a deployment, in order; ``reuse``: the services run already,
    only upload the workload and run the job."""
    pool = f"IN COMPUTE POOL {d.compute_pool}"
    warehouse = [f"QUERY_WAREHOUSE = {d.warehouse}"] if d.warehouse else []
    out = [
        Statement(
            StatementKind.CREATE_SERVICE,
            _with_spec(
                f"CREATE SERVICE {CONTROLLER}\n{pool}",
                controller_spec(d),
                ["MIN_INSTANCES = 1", "MAX_INSTANCES = 1"],
            ),
            CONTROLLER,
        ),
        Statement(
            StatementKind.CREATE_SERVICE,
            _with_spec(
                f"CREATE SERVICE {WORKERS}\n{pool}",
                workers_spec(d),
                [f"MIN_INSTANCES = {d.workers}", f"MAX_INSTANCES = {d.workers}", *warehouse],
            ),
            WORKERS,
        ),
    ]
    if reuse:
        out = []
    if d.workload is not None:
        uri = d.workload.resolve().as_uri().replace("'", "\\'")
        out += [
            Statement(
                StatementKind.CREATE_STAGE,
                f"CREATE STAGE IF NOT EXISTS {STAGE} ENCRYPTION = (TYPE = 'SNOWFLAKE_SSE')",
            ),
            Statement(
                StatementKind.UPLOAD,
                f"PUT '{uri}' @{STAGE} AUTO_COMPRESS = FALSE OVERWRITE = TRUE",
            ),
        ]
    out.append(
        Statement(
            StatementKind.WAIT,
            f"SELECT SYSTEM$WAIT_FOR_SERVICES({WAIT_S}, '{CONTROLLER}', '{WORKERS}')",
        )
    )
    if d.workload is not None:
        out += [
            Statement(StatementKind.DROP, f"DROP SERVICE IF EXISTS {d.job}", d.job),
            Statement(
                StatementKind.EXECUTE_JOB,
                _with_spec(
                    f"EXECUTE JOB SERVICE\n{pool}",
                    job_spec(d),
                    [f"NAME = {d.job}", *warehouse],
                ),
                d.job,
            ),
        ]
    return out


def down(workload: Path | None = None) -> list[Statement]:
    """What ``--down`` runs: it needs the services' names only (no pool, image or count)."""
    return [
        Statement(StatementKind.DROP, f"DROP SERVICE IF EXISTS {s}", s) for s in services(workload)
    ]


def grants(d: SpcsDeployment) -> list[str]:
    """The privileges the deploying role needs (comments above the SQL)."""
    db, schema, repo = d.image.split("/")[1:4]
    lines = [
        "The role that runs this owns the services; it must not be ACCOUNTADMIN or",
        "SECURITYADMIN. It needs (GRANT ... TO ROLE <role>, by an administrator):",
        f"  GRANT USAGE ON DATABASE {db} TO ROLE <role>;",
        f"  GRANT USAGE, CREATE SERVICE ON SCHEMA {db}.{schema} TO ROLE <role>;",
        f"  GRANT USAGE, MONITOR ON COMPUTE POOL {d.compute_pool} TO ROLE <role>;",
        f"  GRANT READ ON IMAGE REPOSITORY {db}.{schema}.{repo} TO ROLE <role>;",
    ]
    if d.warehouse:
        lines.append(f"  GRANT USAGE ON WAREHOUSE {d.warehouse} TO ROLE <role>;")
    if d.workload is not None:
        lines.append(f"  GRANT CREATE STAGE ON SCHEMA {db}.{schema} TO ROLE <role>;")
    lines += [
        "and, once, the controller's bearer token as a secret in the services' schema:",
        f"  CREATE SECRET {TOKEN_SECRET} TYPE = GENERIC_STRING SECRET_STRING = '<random>';",
        "Run it in the schema that holds the services (USE SCHEMA <db>.<schema>): workers",
        f"reach the controller as {d.controller_host}, a name that resolves in that schema.",
    ]
    return lines


def render(statements: list[Statement], comments: list[str]) -> str:
    head = "".join(f"-- {line}\n" if line else "--\n" for line in comments)
    return head + "".join(f"\n{s.sql};\n" for s in statements)
