"""``snowload deploy kubernetes``: the manifests of deploy/kubernetes/ (controller
Deployment + Service + results volume, workers Deployment) for ``kubectl apply -f -``, with
the image and the number of workers filled in, and for ``--run`` a ConfigMap holding the
workload and a Job that runs it headless: the Job's pod exits with the run's exit code.

Credentials stay in Secrets the user creates (deploy/README.md): the controller's bearer
token (``snowload-token``), PostgreSQL's PG* variables (``snowload-postgres``) and
Snowflake's connections.toml (``snowflake-connections``). tests/test_deploy_k8s.py checks
that these dicts and the files in deploy/kubernetes/ say the same.
"""

from __future__ import annotations

import hashlib
from typing import Any

from controller.deploy_image import check_image

NAMESPACE = "snowload"
CONTROLLER = "snowload-controller"
WORKERS = "snowload-workers"
PORT = 7070
RESULTS_DIR = "/data"
WORKLOAD_DIR = "/workloads"
WORKLOAD_KEY = "workload.toml"
APP = {"app.kubernetes.io/name": "snowload"}

Manifest = dict[str, Any]


def labels(component: str) -> dict[str, str]:
    return {**APP, "app.kubernetes.io/component": component}


def token_env() -> dict[str, Any]:
    return {
        "name": "SNOWLOAD_TOKEN",
        "valueFrom": {"secretKeyRef": {"name": "snowload-token", "key": "token"}},
    }


def security_context() -> dict[str, Any]:
    return {"runAsNonRoot": True, "runAsUser": 10001, "fsGroup": 10001}


def namespace(name: str) -> Manifest:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def controller_service() -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": CONTROLLER, "labels": labels("controller")},
        "spec": {
            "selector": labels("controller"),
            "ports": [
                {
                    "name": "grpc",
                    "port": PORT,
                    "targetPort": "grpc",
                    "appProtocol": "kubernetes.io/h2c",
                }
            ],
        },
    }


def results_claim() -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "snowload-results", "labels": dict(APP)},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }


def controller_deployment(image: str) -> Manifest:
    container = {
        "name": "controller",
        "image": image,
        "args": ["controller", "--listen", f"0.0.0.0:{PORT}", "--db", f"{RESULTS_DIR}/results.db"],
        "env": [token_env()],
        "ports": [{"name": "grpc", "containerPort": PORT}],
        "readinessProbe": {"grpc": {"port": PORT}, "periodSeconds": 5},
        "livenessProbe": {"grpc": {"port": PORT}, "periodSeconds": 10, "failureThreshold": 6},
        "resources": {
            "requests": {"cpu": "500m", "memory": "256Mi"},
            "limits": {"memory": "1Gi"},
        },
        "volumeMounts": [{"name": "results", "mountPath": RESULTS_DIR}],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": CONTROLLER, "labels": labels("controller")},
        "spec": {
            "replicas": 1,
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": labels("controller")},
            "template": {
                "metadata": {"labels": labels("controller")},
                "spec": {
                    "terminationGracePeriodSeconds": 60,
                    "securityContext": security_context(),
                    "containers": [container],
                    "volumes": [
                        {
                            "name": "results",
                            "persistentVolumeClaim": {"claimName": "snowload-results"},
                        }
                    ],
                },
            },
        },
    }


def target_credentials() -> tuple[list[Any], list[Any], list[Any]]:
    """(envFrom, volumeMounts, volumes) that give a pod the targets' credentials."""
    env_from = [{"secretRef": {"name": "snowload-postgres", "optional": True}}]
    mounts = [{"name": "snowflake", "mountPath": "/etc/snowflake", "readOnly": True}]
    volumes = [
        {
            "name": "snowflake",
            "secret": {
                "secretName": "snowflake-connections",
                "optional": True,
                "defaultMode": 0o400,
            },
        }
    ]
    return env_from, mounts, volumes


def workers_deployment(image: str, replicas: int) -> Manifest:
    env_from, mounts, volumes = target_credentials()
    container = {
        "name": "worker",
        "image": image,
        "args": ["worker", "--controller", f"{CONTROLLER}:{PORT}", "--capacity", "64"],
        "env": [token_env()],
        "envFrom": env_from,
        "resources": {
            "requests": {"cpu": "1", "memory": "256Mi"},
            "limits": {"cpu": "1", "memory": "1Gi"},
        },
        "volumeMounts": [*mounts, {"name": "data", "mountPath": "/data"}],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": WORKERS, "labels": labels("worker")},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels("worker")},
            "template": {
                "metadata": {"labels": labels("worker")},
                "spec": {
                    "terminationGracePeriodSeconds": 30,
                    "securityContext": security_context(),
                    "topologySpreadConstraints": [
                        {
                            "maxSkew": 1,
                            "topologyKey": "kubernetes.io/hostname",
                            "whenUnsatisfiable": "ScheduleAnyway",
                            "labelSelector": {"matchLabels": labels("worker")},
                        }
                    ],
                    "containers": [container],
                    "volumes": [*volumes, {"name": "data", "emptyDir": {}}],
                },
            },
        },
    }


def workload_config_map(name: str, workload_text: str) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "labels": labels("run")},
        "immutable": True,
        "data": {WORKLOAD_KEY: workload_text},
    }


def run_job(image: str, name: str, config_map: str) -> Manifest:
    """``snowload run`` against the controller: the pod's exit code is the run's (0 passed,
    3 failed, 4 an SLO failed) and the Job fails with it, never running it twice. The init
    container waits until the controller answers, so that applying everything at once
    does not fail the Job on a controller that is still starting."""
    address = f"{CONTROLLER}:{PORT}"
    wait = (
        f"until snowload runs --controller {address} list --limit 1 >/dev/null 2>&1; "
        "do echo waiting for the controller; sleep 5; done"
    )
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": labels("run")},
        "spec": {
            "backoffLimit": 0,  # the run's failure is the Job's: never run it twice
            "ttlSecondsAfterFinished": 86400,
            "template": {
                "metadata": {"labels": labels("run")},
                "spec": {
                    "restartPolicy": "Never",
                    "securityContext": security_context(),
                    "initContainers": [
                        {
                            "name": "wait-for-controller",
                            "image": image,
                            "command": ["sh", "-c", wait],
                            "env": [token_env()],
                        }
                    ],
                    "containers": [
                        {
                            "name": "run",
                            "image": image,
                            "args": [
                                "run",
                                f"{WORKLOAD_DIR}/{WORKLOAD_KEY}",
                                "--controller",
                                address,
                                "--json",
                            ],
                            "env": [token_env()],
                            "volumeMounts": [
                                {"name": "workload", "mountPath": WORKLOAD_DIR, "readOnly": True}
                            ],
                        }
                    ],
                    "volumes": [{"name": "workload", "configMap": {"name": config_map}}],
                },
            },
        },
    }


def render(
    image: str,
    workers: int,
    workload_text: str | None = None,
    namespace_name: str = NAMESPACE,
) -> list[Manifest]:
    """Every manifest, in the order ``kubectl apply -f -`` should create them."""
    check_image(image)
    if workers < 1:
        raise ValueError(f"--workers must be at least 1, got {workers}")
    docs = [
        controller_service(),
        results_claim(),
        controller_deployment(image),
        workers_deployment(image, workers),
    ]
    if workload_text is not None:
        # named after the content: a changed workload is a new Job (a Job's pod template
        # cannot change), the same one applied again is left alone
        digest = hashlib.sha256(workload_text.encode()).hexdigest()[:10]
        config_map = f"snowload-workload-{digest}"
        docs += [
            workload_config_map(config_map, workload_text),
            run_job(image, f"snowload-run-{digest}", config_map),
        ]
    for doc in docs:
        doc["metadata"]["namespace"] = namespace_name
    return [namespace(namespace_name), *docs]
