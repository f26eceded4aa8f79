"""``snowload deploy spcs``: the service specifications validate against a schema written
from Snowflake's specification reference (tests/schemas/), agree with deploy/spcs/ and
with the CLI that runs them, and ``--execute`` sends exactly the printed statements through
the real connector. There is no SPCS account here: fakesnow (behind the recording proxy,
tests/sf_recorder.py) runs the stage and the upload, and the proxy answers the SPCS
statements as Snowflake documents them (SHOW SERVICE CONTAINERS IN SERVICE columns)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shlex
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import snowflake.connector
import yaml

from controller import deploy_spcs as spcs
from controller.cli import build_parser as controller_parser
from controller.cli import main as controller_main
from controller.deploy_image import ImageError
from controller.deploy_spcs_execute import readiness
from tests.fakesnow import SECRET
from tests.sf_recorder import SnowflakeRecorder, refusal, result
from worker.cli import build_parser as worker_parser

REPO = Path(__file__).resolve().parent.parent
SCHEMA = json.loads((REPO / "tests" / "schemas" / "spcs-specification.schema.json").read_text())
IMAGE = "/snowload_db/public/images/snowload:0.1.0"
WORKLOAD = """
name = "in-spcs"
[target]
driver = "snowflake"
connection = "spcs"
[load]
workers = 2
duration = "10s"
[[query]]
name = "one"
sql = "SELECT 1"
"""


def deployment(tmp_path: Path | None = None, workers: int = 3) -> spcs.SpcsDeployment:
    workload = None
    if tmp_path is not None:
        workload = tmp_path / "point lookups.toml"
        workload.write_text(WORKLOAD)
    return spcs.SpcsDeployment("SNOWLOAD_POOL", IMAGE, workers, "LOAD_WH", workload)


def specs_in(sql: str) -> list[dict[str, Any]]:
    return [yaml.safe_load(text) for text in re.findall(r"\$\$\n(.*?)\$\$", sql, re.S)]


def validate(spec: dict[str, Any]) -> None:
    jsonschema.validate(spec, SCHEMA, cls=jsonschema.Draft202012Validator)


def test_every_specification_validates_and_a_misspelled_field_does_not(tmp_path: Path) -> None:
    statements = spcs.up(deployment(tmp_path))
    specs = [s for st in statements for s in specs_in(st.sql)]
    assert len(specs) == 3
    files = sorted((REPO / "deploy" / "spcs").glob("*.yaml"))
    assert [p.name for p in files] == ["controller.yaml", "run-job.yaml", "workers.yaml"]
    for spec in [*specs, *(yaml.safe_load(p.read_text()) for p in files)]:
        validate(spec)
    # the schema is strict: it would catch what Snowflake rejects
    bad = specs[0]
    bad["spec"]["containers"][0]["volumeMount"] = bad["spec"]["containers"][0].pop("volumeMounts")
    with pytest.raises(jsonschema.ValidationError, match="volumeMount"):
        validate(bad)
    for broken in (
        {"spec": {"containers": [{"name": "Ctl", "image": IMAGE}]}},  # names are lower-case
        {"spec": {"containers": [{"name": "c", "image": "/a/b/c/snowload"}]}},  # no tag
        {
            "spec": {
                "containers": [{"name": "c", "image": IMAGE}],
                "volumes": [{"name": "v", "source": "block"}],
            }
        },
        {
            "spec": {
                "containers": [{"name": "c", "image": IMAGE}],
                "endpoints": [{"name": "e", "port": 1, "protocol": "TCP", "public": True}],
            }
        },
    ):
        with pytest.raises(jsonschema.ValidationError):
            validate(broken)


def test_deploy_spcs_files_are_what_the_command_renders() -> None:
    d = spcs.SpcsDeployment("P", IMAGE, 4, "", Path("workload.toml"))
    rendered = {
        "controller.yaml": spcs.controller_spec(d),
        "workers.yaml": spcs.workers_spec(d),
        "run-job.yaml": spcs.job_spec(d),
    }
    for name, spec in rendered.items():
        assert yaml.safe_load((REPO / "deploy" / "spcs" / name).read_text()) == spec, name


def test_the_services_find_each_other_and_the_job_runs_the_workload(tmp_path: Path) -> None:
    d = deployment(tmp_path, workers=5)
    by_kind = {st.service or st.kind.value: st for st in spcs.up(d)}
    ctl_sql = by_kind[spcs.CONTROLLER].sql
    wrk_sql = by_kind[spcs.WORKERS].sql
    job_sql = by_kind[d.job].sql
    (ctl,) = specs_in(ctl_sql)
    (wrk,) = specs_in(wrk_sql)
    (job,) = specs_in(job_sql)
    assert "MIN_INSTANCES = 1\nMAX_INSTANCES = 1" in ctl_sql
    assert "MIN_INSTANCES = 5\nMAX_INSTANCES = 5\nQUERY_WAREHOUSE = LOAD_WH" in wrk_sql
    assert job_sql.startswith("EXECUTE JOB SERVICE\nIN COMPUTE POOL SNOWLOAD_POOL\nFROM")
    assert f"NAME = {d.job}\nQUERY_WAREHOUSE = LOAD_WH" in job_sql
    assert d.job == "SNOWLOAD_RUN_POINT_LOOKUPS"
    (c,) = ctl["spec"]["containers"]
    (w,) = wrk["spec"]["containers"]
    (r,) = job["spec"]["containers"]
    ctl_args = controller_parser().parse_args(c["args"])  # the real parsers accept them
    wrk_args = worker_parser().parse_args(w["args"][1:])
    run_args = controller_parser().parse_args(r["args"])
    port = int(ctl_args.listen.rsplit(":", 1)[1])
    (endpoint,) = ctl["spec"]["endpoints"]
    assert endpoint["port"] == port and endpoint["protocol"] == "TCP" and not endpoint["public"]
    # the service DNS name: the service's name, lower case, '_' as '-'
    dns = spcs.CONTROLLER.lower().replace("_", "-")
    assert wrk_args.controller == run_args.controller == f"{dns}:{port}"
    # results on the block volume
    (volume,) = ctl["spec"]["volumes"]
    assert volume["source"] == "block"
    mount = next(m for m in c["volumeMounts"] if m["name"] == volume["name"])
    assert ctl_args.db.startswith(mount["mountPath"] + "/")
    # the job reads the workload that the PUT uploads, from the stage it mounts
    (stage_volume,) = job["spec"]["volumes"]
    assert stage_volume["source"] == f"@{spcs.STAGE}"
    job_mount = next(m for m in r["volumeMounts"] if m["name"] == stage_volume["name"])
    put = by_kind[spcs.StatementKind.UPLOAD.value].sql
    assert f"@{spcs.STAGE} " in put and "AUTO_COMPRESS = FALSE" in put
    assert run_args.workload == f"{job_mount['mountPath']}/{d.workload.name}"  # type: ignore[union-attr]
    assert run_args.json and run_args.command == "run"
    # one token for all three, from the secret, never in the statements
    for spec in (c, w, r):
        assert spec["secrets"] == [
            {
                "snowflakeSecret": {"objectName": spcs.TOKEN_SECRET},
                "secretKeyRef": "secret_string",
                "envVarName": "SNOWLOAD_TOKEN",
            }
        ]
        assert "--token" not in spec["args"]


@pytest.mark.parametrize(
    ("image", "problem"),
    [
        ("/snowload_db/public/images/snowload", "has no tag"),
        ("registry.example:5000/snowload", "has no tag"),
        ("registry.example/snowload:0.1.0", "image repository of the account"),
        ("/db/schema/repo/snowload@sha256:" + "a" * 64, "image repository of the account"),
    ],
)
def test_an_image_without_a_tag_or_outside_the_account_is_refused(image: str, problem: str) -> None:
    with pytest.raises(ImageError, match=problem):
        spcs.SpcsDeployment("P", image, 1)
    code, out, err = cli("--compute-pool", "P", "--image", image, "--workers", "2")
    assert code == 2 and problem in err and not out


def cli(*args: str) -> tuple[int, str, str]:
    """``snowload deploy spcs ARGS`` in this process (printing needs no connection)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = controller_main(["deploy", "spcs", *args])
    return code, out.getvalue(), err.getvalue()


def container_rows(service: str, statuses: list[str]) -> dict[str, Any]:
    columns = ["database_name", "schema_name", "service_name", "service_status"]
    columns += ["instance_id", "instance_status", "container_name", "status", "message"]
    rows = []
    for i, s in enumerate(statuses):
        running = s == "READY"
        service_status, message = ("RUNNING", "Running") if running else ("PENDING", "Pulling")
        rows.append(["SLDB", "PUBLIC", service, service_status, str(i), s, "worker", s, message])
    return result(columns, rows)


class FakeSpcs:
    """Answers the SPCS statements as Snowflake would (everything else reaches fakesnow):
    services become READY on the second SHOW SERVICE CONTAINERS; ``refuse`` makes one
    CREATE SERVICE fail for lack of privileges."""

    def __init__(self, workers: int, refuse: str = "") -> None:
        self.workers = workers
        self.refuse = refuse
        self.polls: dict[str, int] = {}
        self.lock = threading.Lock()

    def __call__(self, path: str, body: dict[str, Any]) -> dict[str, Any] | None:
        if not path.startswith("/queries/v1/query-request"):
            return None
        sql = str(body.get("sqlText", ""))
        head = sql.split("\n", 1)[0]
        if self.refuse and head == f"CREATE SERVICE {self.refuse}":
            return refusal(
                "003001",
                "42501",
                "SQL access control error:\nInsufficient privileges to operate on compute "
                "pool 'SNOWLOAD_POOL'",
            )
        if head.startswith("CREATE SERVICE "):
            return result(["status"], [[f"Service {head.split()[2]} successfully created."]])
        if m := re.match(r"SHOW SERVICE CONTAINERS IN SERVICE (\w+)$", sql):
            service = m.group(1)
            with self.lock:
                self.polls[service] = self.polls.get(service, 0) + 1
                ready = self.polls[service] >= 2
            n = self.workers if service == spcs.WORKERS else 1
            return container_rows(service, ["READY" if ready else "PENDING"] * n)
        if head.startswith(("SELECT SYSTEM$WAIT_FOR_SERVICES", "DROP SERVICE", "EXECUTE JOB")):
            return result(["status"], [["OK"]])
        return None


@pytest.fixture
def sfhome(tmp_path: Path, fakesnow_port: int, snowflake_home: Path) -> Iterator[Path]:
    """A connections.toml whose ``deployer`` goes through the recording proxy."""
    # the database the deploying role works in (fakesnow's shared in-memory instance)
    with snowflake.connector.connect(connection_name="fake") as conn:
        conn.cursor().execute("CREATE DATABASE IF NOT EXISTS SLDB")
    home = tmp_path / "sfhome"
    home.mkdir()
    yield home


def deploy(home: Path, port: int, *args: str) -> subprocess.CompletedProcess[str]:
    toml = home / "connections.toml"
    toml.write_text(
        f'[deployer]\naccount = "fakesnow"\nuser = "deployer"\npassword = "{SECRET}"\n'
        f'host = "127.0.0.1"\nport = {port}\nprotocol = "http"\n'
        'database = "SLDB"\nschema = "PUBLIC"\n'
    )
    toml.chmod(0o600)
    env = dict(os.environ, SNOWFLAKE_HOME=str(home))
    return subprocess.run(
        [sys.executable, "-m", "snowload.cli", "deploy", "spcs", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def printed_statements(sql: str) -> list[str]:
    body = "\n".join(line for line in sql.splitlines() if not line.startswith("--"))
    return [s.strip() for s in (body + "\n").split(";\n") if s.strip()]


def sent(rec: SnowflakeRecorder) -> list[str]:
    """The statements sent, less the status polls and the connector's own second PUT per
    uploaded file (it asks again for the file's upload address, naming the file alone)."""
    out: list[str] = []
    for r in rec.queries():
        sql = str(r.body["sqlText"])
        if sql.startswith("SHOW SERVICE CONTAINERS"):
            continue
        if sql.startswith("PUT ") and out and out[-1].startswith("PUT "):
            continue
        out.append(sql)
    return out


def test_execute_sends_exactly_the_printed_statements_and_waits_for_ready(
    sfhome: Path, fakesnow_port: int, tmp_path: Path
) -> None:
    d = deployment(tmp_path, workers=3)
    base = ["--compute-pool", "SNOWLOAD_POOL", "--image", IMAGE, "--workers", "3"]
    base += ["--warehouse", "LOAD_WH", "--run", str(d.workload)]
    code, printed, _ = cli(*base)
    assert code == 0
    assert "GRANT USAGE, MONITOR ON COMPUTE POOL SNOWLOAD_POOL" in printed
    expected = printed_statements(printed)
    assert len(expected) == 7
    fake = FakeSpcs(workers=3)
    rec = SnowflakeRecorder(fakesnow_port, fake)
    rec.start()
    try:
        done = deploy(
            sfhome, rec.port, *base, "--execute", "--connection", "deployer", "--poll", "0.1s"
        )
    finally:
        rec.close()
    assert done.returncode == 0, done.stderr
    assert sent(rec) == expected
    # READY was asked for (and seen) before the job started
    polls = [r for r in rec.queries() if "SHOW SERVICE CONTAINERS" in str(r.body["sqlText"])]
    job = next(r for r in rec.queries() if str(r.body["sqlText"]).startswith("EXECUTE JOB"))
    assert fake.polls == {spcs.CONTROLLER: 2, spcs.WORKERS: 2}
    assert all(p.time_ns < job.time_ns for p in polls)
    assert "SNOWLOAD_WORKERS 3/3 READY" in done.stderr
    # the workload reached the stage the job mounts (fakesnow ran CREATE STAGE and PUT)
    with snowflake.connector.connect(connection_name="fake", database="SLDB") as conn:
        cur = conn.cursor()
        cur.execute(f"LIST @SLDB.PUBLIC.{spcs.STAGE}")
        assert any(str(row[0]).endswith("point lookups.toml") for row in cur.fetchall())


def test_a_refused_statement_reports_snowflakes_error_and_what_down_removes(
    sfhome: Path, fakesnow_port: int, tmp_path: Path
) -> None:
    base = ["--compute-pool", "SNOWLOAD_POOL", "--image", IMAGE, "--workers", "2"]
    rec = SnowflakeRecorder(fakesnow_port, FakeSpcs(workers=2, refuse=spcs.WORKERS))
    rec.start()
    try:
        failed = deploy(
            sfhome, rec.port, *base, "--execute", "--connection", "deployer", "--poll", "0.1s"
        )
        statements = sent(rec)
        # the command the error names, run as it is printed: no pool, image or count
        hint = re.search(r"'(snowload deploy spcs [^']*)' removes", failed.stderr)
        assert hint, failed.stderr
        command = shlex.split(hint.group(1))
        assert command[3:] == ["--down", "--execute", "--connection", "deployer"]
        down = deploy(sfhome, rec.port, *command[3:])
        dropped = sent(rec)[len(statements) :]
    finally:
        rec.close()
    assert failed.returncode == 3
    err = failed.stderr
    assert "Traceback" not in err
    assert "Insufficient privileges to operate on compute pool 'SNOWLOAD_POOL'" in err
    assert "Snowflake refused CREATE SERVICE SNOWLOAD_WORKERS" in err
    assert "created so far: SNOWLOAD_CONTROLLER;" in err
    # it stopped at the refusal: nothing after it was sent
    assert [s.split("\n", 1)[0] for s in statements] == [
        "CREATE SERVICE SNOWLOAD_CONTROLLER",
        "CREATE SERVICE SNOWLOAD_WORKERS",
    ]
    assert down.returncode == 0, down.stderr
    assert dropped == [
        "DROP SERVICE IF EXISTS SNOWLOAD_WORKERS",
        "DROP SERVICE IF EXISTS SNOWLOAD_CONTROLLER",
    ]
    code, printed_down, _ = cli(*base, "--down")
    assert code == 0 and printed_statements(printed_down) == dropped


def rows(*containers: tuple[str, str | None, str, str]) -> list[dict[str, Any]]:
    return [
        {
            "SERVICE_STATUS": service,
            "INSTANCE_ID": instance,
            "INSTANCE_STATUS": status,
            "STATUS": status,
            "CONTAINER_NAME": "worker",
            "MESSAGE": message,
        }
        for service, instance, status, message in containers
    ]


def test_readiness_counts_instances_whose_every_container_is_ready() -> None:
    assert readiness(rows(("PENDING", None, "", ""))).ready == 0
    two = rows(("RUNNING", "0", "READY", "Running"), ("RUNNING", "1", "PENDING", "Pulling"))
    assert readiness(two).ready == 1
    both = rows(("RUNNING", "0", "READY", "ok"), ("RUNNING", "1", "READY", "ok"))
    assert readiness(both).ready == 2
    failed = readiness(rows(("FAILED", "0", "FAILED", "image not found: snowload:0.1")))
    assert failed.failed == "container worker: image not found: snowload:0.1"


def test_reuse_runs_a_workload_on_the_running_services(tmp_path: Path) -> None:
    d = deployment(tmp_path)
    base = ["--compute-pool", "SNOWLOAD_POOL", "--image", IMAGE, "--workers", "3"]
    code, out, _ = cli(*base, "--run", str(d.workload), "--reuse")
    assert code == 0
    heads = [s.split("\n", 1)[0].split(" (", 1)[0] for s in printed_statements(out)]
    assert [h.split()[0] for h in heads] == ["CREATE", "PUT", "SELECT", "DROP", "EXECUTE"]
    assert not [h for h in heads if h.startswith("CREATE SERVICE")]
    code, _, err = cli(*base, "--reuse")
    assert code == 2 and "needs --run" in err


def test_down_needs_only_the_service_names_and_deploying_names_what_it_misses(
    tmp_path: Path,
) -> None:
    # through the real argparse parser: no pool, image or count, and a --run file that is
    # gone (the job is named after the file name alone)
    code, out, err = cli("--down", "--run", str(tmp_path / "point lookups.toml"))
    assert (code, err) == (0, "")
    assert printed_statements(out) == [
        "DROP SERVICE IF EXISTS SNOWLOAD_RUN_POINT_LOOKUPS",
        "DROP SERVICE IF EXISTS SNOWLOAD_WORKERS",
        "DROP SERVICE IF EXISTS SNOWLOAD_CONTROLLER",
    ]
    code, out, _ = cli("--down")
    assert code == 0 and printed_statements(out)[0] == "DROP SERVICE IF EXISTS SNOWLOAD_WORKERS"
    code, _, err = cli("--down", "--execute")
    assert code == 2 and "--execute needs --connection" in err
    # deploying still needs them, and is told which are missing
    code, out, err = cli("--image", IMAGE)
    assert code == 2 and not out
    assert "required: --compute-pool, --workers" in err and "Traceback" not in err
    code, _, err = cli()
    assert code == 2 and "required: --compute-pool, --image, --workers" in err
