"""``snowload deploy kubernetes``: every manifest it renders, and every file in
deploy/kubernetes/, validates strictly (unknown fields rejected) against the bundled
schemas of two supported Kubernetes minor versions (kubernetes-validate: offline); the
rendered manifests are the files with the image and the workers filled in; the run Job
fails exactly when the run does, and its wait for the controller really waits."""

from __future__ import annotations

import contextlib
import copy
import io
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from controller import deploy_k8s
from controller.cli import build_parser as controller_parser
from controller.cli import main as controller_main
from tests.cluster import start_daemon
from tests.pg import free_port

REPO = Path(__file__).resolve().parent.parent
K8S = REPO / "deploy" / "kubernetes"
VERSIONS = ("1.35.0", "1.37.0")
"""The oldest and the newest minor version supported upstream when this was written."""
IMAGE = "registry.example.com/snowload:0.1.0"
WORKLOAD = """
name = "on-k8s"
[target]
driver = "postgres"
dsn = "connect_timeout=10"
[load]
workers = 2
duration = "10s"
[[query]]
name = "one"
sql = "SELECT 1"
"""


def cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = controller_main(["deploy", "kubernetes", *args])
    return code, out.getvalue(), err.getvalue()


def rendered(tmp_path: Path, *extra: str) -> list[dict[str, Any]]:
    workload = tmp_path / "w.toml"
    workload.write_text(WORKLOAD)
    code, out, err = cli("--image", IMAGE, "--workers", "6", "--run", str(workload), *extra)
    assert code == 0, err
    return [d for d in yaml.safe_load_all(out) if d]


def files() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in sorted(K8S.rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") != "Kustomization":
                out.append((str(path.relative_to(REPO)), doc))
    return out


def by_kind(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {f"{d['kind']}/{d['metadata']['name']}": d for d in docs}


def test_every_manifest_validates_strictly_on_two_minor_versions(tmp_path: Path) -> None:
    docs = rendered(tmp_path)
    assert sorted(d["kind"] for d in docs) == [
        "ConfigMap",
        "Deployment",
        "Deployment",
        "Job",
        "Namespace",
        "PersistentVolumeClaim",
        "Service",
    ]
    named = [("rendered", d) for d in docs] + files()
    assert {"deploy/kubernetes/run/job.yaml", "deploy/kubernetes/workers.yaml"} <= {
        n for n, _ in named
    }
    for version in VERSIONS:
        for name, doc in named:
            used = kubernetes_validate.validate(doc, version, strict=True)
            assert used == version.rsplit(".", 1)[0], (name, used)  # no older fallback
    # strict: a misspelled field anywhere is an error (here deep in the Job's pod)
    job = copy.deepcopy(next(d for d in docs if d["kind"] == "Job"))
    container = job["spec"]["template"]["spec"]["containers"][0]
    container["volumeMount"] = container.pop("volumeMounts")
    for version in VERSIONS:
        with pytest.raises(kubernetes_validate.ValidationError, match="volumeMount"):
            kubernetes_validate.validate(job, version, strict=True)


def test_the_schemas_are_bundled_not_fetched() -> None:
    """Offline: kubernetes-validate reads the schemas from its own package files."""
    root = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    for version in VERSIONS:
        strict = root / f"v{version}-local-strict"
        for kind in ("deployment-apps-v1", "job-batch-v1", "service-v1", "configmap-v1"):
            assert (strict / f"{kind}.json").is_file(), (version, kind)


def containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    spec = doc.get("spec", {}).get("template", {}).get("spec", {})
    return [*spec.get("containers", []), *spec.get("initContainers", [])]


def as_in_files(doc: dict[str, Any]) -> dict[str, Any]:
    """A rendered manifest less what the command fills in: the namespace (kustomize's in
    the files), the image, the workers' replicas, the Job's and ConfigMap's names."""
    doc = copy.deepcopy(doc)
    doc["metadata"].pop("namespace", None)
    doc.get("spec", {}).pop("replicas", None) if doc["metadata"][
        "name"
    ] == "snowload-workers" else None
    for c in containers(doc):
        c["image"] = "snowload"
    if doc["kind"] == "Job":
        doc["metadata"]["name"] = "snowload-run"
        doc["spec"]["template"]["spec"]["volumes"][0]["configMap"]["name"] = "snowload-workload"
    return doc


def test_rendered_manifests_are_the_files_with_image_and_workers(tmp_path: Path) -> None:
    docs = rendered(tmp_path, "--namespace", "loadtest")
    assert docs[0] == {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "loadtest"}}
    assert all(d["metadata"]["namespace"] == "loadtest" for d in docs[1:])
    assert all(c["image"] == IMAGE for d in docs for c in containers(d))
    kinds = by_kind(docs)
    assert kinds["Deployment/snowload-workers"]["spec"]["replicas"] == 6
    (config_map,) = [d for d in docs if d["kind"] == "ConfigMap"]
    (job,) = [d for d in docs if d["kind"] == "Job"]
    assert config_map["data"] == {"workload.toml": WORKLOAD} and config_map["immutable"]
    volume = job["spec"]["template"]["spec"]["volumes"][0]
    assert volume["configMap"]["name"] == config_map["metadata"]["name"]
    ours = by_kind([as_in_files(d) for d in docs[1:] if d["kind"] != "ConfigMap"])
    on_disk = by_kind([as_in_files(d) for _, d in files() if d["kind"] != "Namespace"])
    assert ours == on_disk
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert kustomization["images"][0]["name"] == "snowload"


def test_the_job_fails_exactly_when_the_run_does(tmp_path: Path) -> None:
    docs = rendered(tmp_path)
    job = next(d for d in docs if d["kind"] == "Job")
    spec = job["spec"]
    pod = spec["template"]["spec"]
    # one attempt: the pod's exit code (the run's) decides the Job, never a retry
    assert spec["backoffLimit"] == 0 and pod["restartPolicy"] == "Never"
    (run,) = pod["containers"]
    args = controller_parser().parse_args(run["args"])
    assert args.command == "run" and args.json
    mount = run["volumeMounts"][0]
    assert args.workload == f"{mount['mountPath']}/{deploy_k8s.WORKLOAD_KEY}"
    service = next(d for d in docs if d["kind"] == "Service")
    assert args.controller == f"{service['metadata']['name']}:{service['spec']['ports'][0]['port']}"
    # credentials: the token from its Secret; the targets' logins stay with the workers
    for container in [run, *pod["initContainers"]]:
        assert container["env"] == [deploy_k8s.token_env()]
    workers = next(d for d in docs if d["metadata"]["name"] == "snowload-workers")
    wpod = workers["spec"]["template"]["spec"]
    assert wpod["containers"][0]["envFrom"] == [
        {"secretRef": {"name": "snowload-postgres", "optional": True}}
    ]
    assert {"name": "snowflake", "mountPath": "/etc/snowflake", "readOnly": True} in wpod[
        "containers"
    ][0]["volumeMounts"]
    assert any(
        v.get("secret", {}).get("secretName") == "snowflake-connections" for v in wpod["volumes"]
    )
    assert "PGPASSWORD" not in yaml.safe_dump_all(docs)


def test_the_init_container_waits_until_the_controller_answers(tmp_path: Path) -> None:
    """The init container's own command: it keeps waiting while nothing listens, and
    ends once the controller answers (with the token the Secret provides)."""
    (init,) = next(d for d in rendered(tmp_path) if d["kind"] == "Job")["spec"]["template"]["spec"][
        "initContainers"
    ]
    assert init["command"][:2] == ["sh", "-c"]
    port = free_port()
    script = init["command"][2].replace("snowload-controller:7070", f"127.0.0.1:{port}")
    script = script.replace("sleep 5", "sleep 0.2")
    token = os.urandom(8).hex()
    env = dict(os.environ, SNOWLOAD_TOKEN=token, SNOWLOAD_HOME=str(tmp_path / "home"))
    bin_dir = tmp_path / "bin"  # `snowload` as the image's entry point runs it
    bin_dir.mkdir()
    (bin_dir / "snowload").write_text(f'#!/bin/sh\nexec {sys.executable} -m snowload.cli "$@"\n')
    (bin_dir / "snowload").chmod(0o755)
    env["PATH"] = f"{bin_dir}:{env['PATH']}"
    waiting = subprocess.Popen(
        ["sh", "-c", script], env=env, stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    daemon = None
    try:
        assert waiting.stdout is not None
        assert waiting.stdout.readline().strip() == "waiting for the controller"
        assert waiting.poll() is None
        daemon, _ = start_daemon(
            ["--listen", f"127.0.0.1:{port}", "--db", str(tmp_path / "r.db")], env
        )
        assert waiting.wait(60) == 0
    finally:
        if waiting.poll() is None:
            os.killpg(waiting.pid, signal.SIGKILL)
            waiting.wait()
        if daemon is not None:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(30)


@pytest.mark.parametrize("image", ["snowload", "registry.example.com:5000/snowload", "reg/x:"])
def test_an_image_without_a_tag_is_refused(image: str) -> None:
    code, out, err = cli("--image", image, "--workers", "2")
    assert code == 2 and not out
    assert f"--image {image!r}" in err


def test_a_bad_workload_is_refused_before_anything_is_rendered(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(WORKLOAD.replace('sql = "SELECT 1"', 'sql = "SELECT 1"\nweight = -1'))
    code, out, err = cli("--image", IMAGE, "--workers", "2", "--run", str(bad))
    assert code == 2 and not out
    assert "bad.toml" in err and "weight" in err
