"""deploy/: the image recipe holds what the package needs, and the Kubernetes manifests
describe processes that start and find each other (run here as real processes with the
manifests' own arguments; only the addresses change to loopback and free ports)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import grpc
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

from controller.cli import build_parser as controller_parser
from snowload.v1 import run_pb2, run_pb2_grpc
from tests.cluster import start_daemon
from worker.cli import build_parser as worker_parser

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"


def manifests() -> dict[tuple[str, str], dict[str, Any]]:
    out = {}
    for path in sorted((DEPLOY / "kubernetes").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and "kind" in doc and doc["kind"] != "Kustomization":
                out[(doc["kind"], doc["metadata"]["name"])] = doc
    return out


def container(doc: dict[str, Any]) -> dict[str, Any]:
    containers = doc["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return dict(containers[0])


def test_containerfile_copies_everything_the_package_needs(tmp_path: Path) -> None:
    text = (DEPLOY / "Containerfile").read_text()
    sources = [s for line in re.findall(r"^COPY (.+)$", text, re.M) for s in line.split()[:-1]]
    included = re.search(r"include = \[(.*?)\]", (REPO / "pyproject.toml").read_text())
    assert included is not None
    packages = {p.strip(' "*') for p in included.group(1).split(",")}
    assert packages <= set(sources), f"not copied into the image: {packages - set(sources)}"
    context = tmp_path / "context"
    context.mkdir()
    for source in sources:  # exactly what the image build sees
        src = REPO / source
        if src.is_dir():
            shutil.copytree(src, context / source, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(src, context / source)
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path / "wheel"),
            str(context),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "wheel").glob("snowload-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in (
        "snowload/cli.py",
        "snowload/v1/run_pb2.py",
        "controller/server.py",
        "worker/agent.py",
        "tui/app.py",
    ):
        assert needed in names
    assert 'ENTRYPOINT ["snowload"]' in text


def test_manifests_agree_with_each_other_and_with_the_cli() -> None:
    docs = manifests()
    service = docs[("Service", "snowload-controller")]
    ctl = docs[("Deployment", "snowload-controller")]
    wrk = docs[("Deployment", "snowload-workers")]
    kustomization = yaml.safe_load((DEPLOY / "kubernetes" / "kustomization.yaml").read_text())
    assert set(kustomization["resources"]) == {
        p.name for p in (DEPLOY / "kubernetes").glob("*.yaml") if p.name != "kustomization.yaml"
    }
    for deployment in (ctl, wrk):  # selectors select their own pods
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert (
        service["spec"]["selector"].items() <= ctl["spec"]["template"]["metadata"]["labels"].items()
    )
    assert ctl["spec"]["replicas"] == 1 and ctl["spec"]["strategy"]["type"] == "Recreate"

    c, w = container(ctl), container(wrk)
    ctl_args = controller_parser().parse_args(c["args"])  # the real parsers accept them
    wrk_args = worker_parser().parse_args(w["args"][1:])
    port = int(ctl_args.listen.rsplit(":", 1)[1])
    (svc_port,) = service["spec"]["ports"]
    (ctl_port,) = c["ports"]
    assert svc_port["targetPort"] == ctl_port["name"] and ctl_port["containerPort"] == port
    assert wrk_args.controller == f"{service['metadata']['name']}:{svc_port['port']}"
    for probe in ("readinessProbe", "livenessProbe"):
        assert c[probe]["grpc"]["port"] == port  # grpc.health.v1 answers without the token
    # one secret for both sides, never a literal token
    for spec in (c, w):
        (token,) = [e for e in spec["env"] if e["name"] == "SNOWLOAD_TOKEN"]
        assert token["valueFrom"]["secretKeyRef"] == {"name": "snowload-token", "key": "token"}
        assert "--token" not in spec["args"]
    # PostgreSQL logins reach the workers from a Secret (libpq's PG* variables), optional
    assert w["envFrom"] == [{"secretRef": {"name": "snowload-postgres", "optional": True}}]
    assert "envFrom" not in c  # the controller never connects to a target
    readme = (DEPLOY / "README.md").read_text()
    for var in ("PGHOST", "PGPORT", "PGDATABASE", "PGUSER", "PGPASSWORD"):
        assert f"--from-literal={var}=" in readme, var
    assert "python -c" not in readme  # python3: what a fresh machine has
    # the results database is on the controller's volume
    mounts = {m["mountPath"] for m in c["volumeMounts"]}
    assert any(ctl_args.db.startswith(m + "/") for m in mounts)
    assert w["resources"]["limits"]["cpu"] == "1"


def test_the_manifests_commands_start_and_find_each_other(tmp_path: Path) -> None:
    docs = manifests()
    c = container(docs[("Deployment", "snowload-controller")])
    w = container(docs[("Deployment", "snowload-workers")])
    token = os.urandom(16).hex()
    env = dict(os.environ, SNOWLOAD_TOKEN=token, SNOWLOAD_HOME=str(tmp_path / "data"))
    args = list(c["args"])
    args[args.index("--listen") + 1] = "127.0.0.1:0"  # (a free loopback port here)
    args[args.index("--db") + 1] = str(tmp_path / "results.db")
    assert args[0] == "controller"
    ctl, address = start_daemon(args[1:], env)  # the manifest's own arguments
    worker: subprocess.Popen[str] | None = None
    try:
        wargs = list(w["args"])
        wargs[wargs.index("--controller") + 1] = address
        worker = subprocess.Popen(
            [sys.executable, "-m", "snowload.cli", *wargs, "--id", "pod-0"],
            env=env,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        with grpc.insecure_channel(address) as channel:
            # the probe's view: health without any token
            health = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=5
            )
            assert health.status == health_pb2.HealthCheckResponse.SERVING
            stub = run_pb2_grpc.RunServiceStub(channel)
            auth = (("authorization", f"Bearer {token}"),)
            deadline = time.monotonic() + 30
            while True:
                listed = stub.ListWorkers(run_pb2.ListWorkersRequest(), metadata=auth, timeout=5)
                if any(x.worker_id == "pod-0" and x.connected for x in listed.workers):
                    break
                assert time.monotonic() < deadline, "the worker did not attach"
                time.sleep(0.1)
            (info,) = listed.workers
            assert info.capacity == int(wargs[wargs.index("--capacity") + 1])
    finally:
        for proc in (worker, ctl):
            if proc is not None:
                proc.send_signal(signal.SIGTERM)
        for proc in (worker, ctl):
            if proc is not None:
                proc.wait(30)
