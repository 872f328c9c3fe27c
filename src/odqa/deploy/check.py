"""One consistency check of what the cluster half deploys (`make cluster-check`, and
tests/deploy/test_check.py in `make test`).

It builds manifests/base and every overlay with kustomize (`kubectl kustomize`), validates every object
against the Kubernetes OpenAPI schemas offline (kubernetes-validate, strict), and cross-checks the names
that must agree across files: namespaces, the Service hosts and ports in URLs (tracking URI,
Elasticsearch URL, S3 endpoint, PostgreSQL), Service port vs containerPort vs probes vs `--port`,
MLflow's host allow-list and readiness probe, the odqa image tag (manifests, the pipeline's default
image, the compiled pipeline, the image the schedule job compiles the pipeline for), the Elasticsearch
client's major version vs the server image, the S3 buckets (init step vs MLflow's artifact destination
and the data URI), the recurring run's data URI, the GPU resource, node selector and taint (GPU
overlay vs compiled pipeline), and the serving Deployment (registry, model name, S3 settings, probes, HPA).

Every problem is one line: `FILE: FIELD: what is wrong`. Exit code 1 when there is any.

    python -m odqa.deploy.check [--root DIR] [--kubernetes-version 1.31.0]

This module imports nothing from odqa.pipeline: the pipeline's default image is read from the source
text (or passed in), its compiled YAMLs from pipelines/odqa_pipeline_{cpu,gpu}.yaml: each deployment is
checked against the one its schedule job compiles (ConfigMap ODQA_PIPELINE_TARGET, default cpu).
Kubeflow Trainer TrainJobs (manifests/trainer/, a CRD kubernetes-validate has no schema for) get their
required fields checked by hand.
"""

from __future__ import annotations

import argparse
import ast
import fnmatch
import functools
import importlib.metadata
import ipaddress
import json
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml

from odqa.deploy import manifests as m
from odqa.errors import InputError

KUBERNETES_VERSION = "1.31.0"
PIPELINE_YAMLS = {"cpu": "pipelines/odqa_pipeline_cpu.yaml", "gpu": "pipelines/odqa_pipeline_gpu.yaml"}
TARGET_ENV = "ODQA_PIPELINE_TARGET"
TRAINER_DIR = "manifests/trainer"
# Custom resources: no OpenAPI schema in kubernetes-validate; check_trainer validates them by hand.
CRD_KINDS = {("trainer.kubeflow.org/v1alpha1", "TrainJob")}
COMPONENTS_PY = "src/odqa/pipeline/components.py"
IMAGES_DIR = "manifests/images"  # Dockerfiles of images the manifests build themselves, one folder each
DEFAULT_PORTS = {"http": 80, "https": 443, "postgresql": 5432, "postgres": 5432}
# MLflow answers these whatever the Host header (mlflow.server.security_utils.HEALTH_ENDPOINTS).
MLFLOW_HOST_EXEMPT_PATHS = ("/health", "/version")
ALLOWED_HOSTS_ENV = "MLFLOW_SERVER_ALLOWED_HOSTS"
GKE_ACCELERATOR_LABEL = "cloud.google.com/gke-accelerator"
ES_CLIENT = "elasticsearch"


@dataclass(frozen=True)
class Problem:
    check: str
    file: str
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.field}: {self.message}"


@dataclass
class Inputs:
    """What the check compares the manifests with. None: read it here (the pipeline's default image
    from the source text of src/odqa/pipeline/components.py, the client version from the installed
    package)."""

    root: Path = m.REPO
    default_image: str | None = None
    es_client_version: str | None = None
    kubernetes_version: str = KUBERNETES_VERSION
    kubectl: str | None = None

    def resolved(self) -> Inputs:
        root = Path(self.root)
        image = self.default_image or default_image_from_source(root / COMPONENTS_PY)
        client = self.es_client_version or _installed_version(ES_CLIENT)
        return Inputs(root, image, client, self.kubernetes_version, self.kubectl)


def _installed_version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def default_image_from_source(path: Path, name: str = "DEFAULT_IMAGE") -> str | None:
    """DEFAULT_IMAGE = "..." (or another constant) in the components module, read as text (no kfp import)."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError):
        return None
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == name for t in node.targets
        ):
            if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
                return node.value.value
    return None


# ---------------------------------------------------------------------------------------------------
# What was deployed, per kustomization


@dataclass
class Deployed:
    name: str  # "base" or the overlay name
    objects: list[dict[str, Any]]
    sources: dict[tuple[str, str], str]
    kustomization: str

    @functools.cached_property
    def namespace(self) -> str | None:
        names = [o["metadata"]["name"] for o in m.find(self.objects, "Namespace")]
        return names[0] if len(names) == 1 else None

    @functools.cached_property
    def services(self) -> dict[str, dict]:
        return {
            o["metadata"]["name"]: o
            for o in m.find(self.objects, "Service")
            if m.namespace_of(o) == self.namespace
        }

    def file(self, obj: dict) -> str:
        return self.sources.get((obj.get("kind"), obj.get("metadata", {}).get("name")), self.kustomization)

    def env(self, cref: m.ContainerRef) -> dict[str, str]:
        try:
            return m.environment(self.objects, cref)
        except InputError:
            return {}

    def argv(self, cref: m.ContainerRef) -> list[str]:
        return m.words(cref, self.env(cref))

    def selected_pods(self, service: dict) -> list[m.ContainerRef]:
        selector = service.get("spec", {}).get("selector") or {}
        found = []
        for cref in m.containers(self.objects):
            labels = cref.workload["spec"]["template"].get("metadata", {}).get("labels") or {}
            if selector and all(labels.get(k) == v for k, v in selector.items()) and not cref.init:
                found.append(cref)
        return found

    def mlflow_server(self) -> m.ContainerRef | None:
        for cref in m.containers(self.objects):
            argv = self.argv(cref)
            if len(argv) >= 2 and Path(argv[0]).name == "mlflow" and argv[1] == "server":
                return cref
        return None

    def serve_containers(self) -> list[m.ContainerRef]:
        """The containers that run `odqa serve` (the champion over HTTP)."""
        return [
            c
            for c in m.containers(self.objects)
            if (argv := self.argv(c))[:2] and Path(argv[0]).name == "odqa" and argv[1:2] == ["serve"]
        ]

    def schedule_job(self) -> m.ContainerRef | None:
        for cref in m.containers(self.objects):
            argv = self.argv(cref)
            if any(argv[i : i + 2] == ["pipeline", "schedule"] for i in range(len(argv))):
                return cref
        return None

    def bucket_steps(self) -> list[m.ContainerRef]:
        return [c for c in m.containers(self.objects) if "odqa.deploy.buckets" in self.argv(c)]

    def service_of(self, cref: m.ContainerRef) -> dict | None:
        for svc in self.services.values():
            if any(c.workload is cref.workload for c in self.selected_pods(svc)):
                return svc
        return None


@dataclass
class Pipeline:
    """The compiled pipeline (pipelines/odqa_pipeline.yaml): parameter defaults, executor images and
    env, GPU requests and Kubernetes platform settings."""

    path: str
    spec: dict[str, Any]
    platform: dict[str, Any]

    @classmethod
    def load(cls, root: Path, rel: str = PIPELINE_YAMLS["cpu"]) -> Pipeline:
        path = Path(root) / rel
        try:
            docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
        except OSError as e:
            raise InputError(
                f"cannot read the compiled pipeline ({e.strerror}); run `make compile`", path=rel
            ) from None
        except yaml.YAMLError as e:
            raise InputError(f"not YAML: {str(e).splitlines()[0]}", path=rel) from None
        if not docs or "root" not in docs[0]:
            raise InputError("not a compiled KFP pipeline (no root)", path=rel)
        return cls(rel, docs[0], docs[1] if len(docs) > 1 else {})

    def defaults(self) -> dict[str, Any]:
        params = self.spec["root"].get("inputDefinitions", {}).get("parameters", {})
        return {k: v.get("defaultValue") for k, v in params.items()}

    def executors(self) -> dict[str, dict]:
        return {
            k: v.get("container", {})
            for k, v in self.spec.get("deploymentSpec", {}).get("executors", {}).items()
        }

    def k8s_executors(self) -> dict[str, dict]:
        return (
            self.platform.get("platforms", {})
            .get("kubernetes", {})
            .get("deploymentSpec", {})
            .get("executors", {})
        )


# ---------------------------------------------------------------------------------------------------
# Helpers


def split_image(image: str) -> tuple[str, str | None]:
    name, _, digest = image.partition("@")
    repo, sep, tag = name.rpartition(":")
    if not sep or "/" in tag:
        return name, None
    return repo, tag


def _major(version: str | None) -> int | None:
    match = re.match(r"v?(\d+)", version or "")
    return int(match.group(1)) if match else None


def host_allowed(patterns: list[str], host: str) -> bool:
    """MLflow's rule (mlflow.server.security_utils.is_allowed_host_header): fnmatch when the pattern has
    a *, else equality; "*" admits everything."""
    if "*" in patterns:
        return True
    return any(fnmatch.fnmatch(host, p) if "*" in p else host == p for p in patterns)


def service_host_forms(service: str, namespace: str) -> list[str]:
    return [
        service,
        f"{service}.{namespace}",
        f"{service}.{namespace}.svc",
        f"{service}.{namespace}.svc.cluster.local",
    ]


def _cluster_host(host: str) -> tuple[str, str | None] | None:
    """(service, namespace or None) for a Kubernetes Service DNS name, None for anything else."""
    if host in ("localhost",) or not host:
        return None
    try:
        ipaddress.ip_address(host.strip("[]"))
        return None
    except ValueError:
        pass
    parts = host.split(".")
    if len(parts) == 1:
        return parts[0], None
    if parts[2:] in ([], ["svc"], ["svc", "cluster", "local"]):
        return parts[0], parts[1]
    return None


@dataclass
class Url:
    """A URL found in the deployment, where it was found, and whether it is used from another
    namespace (the pipeline's pods run in KFP's namespace, so short Service names do not resolve)."""

    value: str
    file: str
    field: str
    cross_namespace: bool = False

    @functools.cached_property
    def parsed(self):
        return urlparse(self.value)

    @property
    def port(self) -> int | None:
        try:
            return self.parsed.port or DEFAULT_PORTS.get(self.parsed.scheme.split("+")[0])
        except ValueError:
            return None

    @property
    def host_header(self) -> str:
        """The Host header an HTTP client sends: host, plus :port unless it is the scheme's default."""
        p = self.parsed
        return p.netloc.rpartition("@")[2]


_URL = re.compile(r"^(https?|postgresql|postgres)(\+\w+)?://", re.I)


def _urls(d: Deployed, pipeline: Pipeline | None) -> list[Url]:
    """Every service URL: ConfigMap values, literal env values, command-line tokens, compiled pipeline
    parameter defaults and executor env."""
    found: list[Url] = []
    job = d.schedule_job()
    pipeline_configmaps = set()
    if job is not None:
        for item in job.container.get("envFrom") or []:
            if "configMapRef" in item:
                pipeline_configmaps.add(item["configMapRef"]["name"])
    for cm in m.find(d.objects, "ConfigMap"):
        for key, value in (cm.get("data") or {}).items():
            if isinstance(value, str) and _URL.match(value.strip()):
                cross = cm["metadata"]["name"] in pipeline_configmaps
                found.append(Url(value.strip(), d.file(cm), f"{m.ref(cm)} data.{key}", cross))
    for cref in m.containers(d.objects):
        env = d.env(cref)
        for item in cref.container.get("env") or []:
            value = m.expand(str(item.get("value", "")), env)
            if _URL.match(value):
                found.append(Url(value, d.file(cref.workload), f"{cref.field} env.{item['name']}"))
        argv = d.argv(cref)
        for i, token in enumerate(argv):
            if _URL.match(token):
                name = argv[i - 1] if i and argv[i - 1].startswith("-") else f"args[{i}]"
                found.append(Url(token, d.file(cref.workload), f"{cref.field} {name}", cref is job))
    if pipeline is not None:
        for key, value in pipeline.defaults().items():
            if isinstance(value, str) and _URL.match(value):
                found.append(
                    Url(value, pipeline.path, f"root.inputDefinitions.parameters.{key}.defaultValue", True)
                )
        for name, c in pipeline.executors().items():
            for item in c.get("env") or []:
                if _URL.match(str(item.get("value", ""))):
                    found.append(Url(item["value"], pipeline.path, f"{name} env.{item['name']}", True))
    return found


def _target(d: Deployed, url: Url) -> dict | None:
    """The Service a URL points at, when it names one of ours."""
    target = _cluster_host(url.parsed.hostname or "")
    if target is None:
        return None
    service, namespace = target
    if namespace not in (None, d.namespace):
        return None
    return d.services.get(service)


# ---------------------------------------------------------------------------------------------------
# The checks. Each yields Problems for one built kustomization (and the compiled pipeline).

Check = Callable[["Context", Deployed], Iterable[Problem]]


@dataclass
class Context:
    inputs: Inputs
    pipelines: dict[str, Pipeline]  # compile target -> compiled pipeline (missing ones are problems)
    pipeline_problem: Problem | None = None

    def target(self, d: Deployed) -> str:
        job = d.schedule_job()
        return (d.env(job).get(TARGET_ENV) if job is not None else None) or "cpu"

    def pipeline_for(self, d: Deployed) -> Pipeline | None:
        """The compiled pipeline this deployment's schedule job runs."""
        return self.pipelines.get(self.target(d))


def check_schema(ctx: Context, d: Deployed) -> Iterator[Problem]:
    for obj in d.objects:
        message = validate_object(obj, ctx.inputs.kubernetes_version)
        if message:
            yield Problem("schema", d.file(obj), f"{m.ref(obj)} {message[0]}", message[1])


def check_namespaces(ctx: Context, d: Deployed) -> Iterator[Problem]:
    namespaces = [o["metadata"]["name"] for o in m.find(d.objects, "Namespace")]
    if len(namespaces) != 1:
        yield Problem(
            "namespace", d.kustomization, "Namespace", f"expected one Namespace object, found {namespaces}"
        )
        return
    astray = [o for o in d.objects if m.namespace_of(o) not in (None, d.namespace)]
    if len(astray) > 3:  # the kustomization lost its namespace: one line, not one per object
        where = sorted({m.namespace_of(o) for o in astray})
        yield Problem(
            "namespace",
            d.kustomization,
            "namespace",
            f"{len(astray)} objects deploy to {', '.join(where)}, the Namespace object is {d.namespace}",
        )
        return
    for obj in astray:
        yield Problem(
            "namespace",
            d.file(obj),
            f"{m.ref(obj)} metadata.namespace",
            f"is {m.namespace_of(obj)}, everything else deploys to {d.namespace} "
            f"(set `namespace:` in {d.kustomization})",
        )


def check_references(ctx: Context, d: Deployed) -> Iterator[Problem]:
    for cref in m.containers(d.objects):
        try:
            m.environment(d.objects, cref)
        except InputError as e:
            message = str(e).removeprefix(f"{cref.field} ")
            yield Problem("references", d.file(cref.workload), f"{cref.field} env", message)
    for obj in d.objects:
        spec = m.pod_spec(obj)
        if not spec:
            continue
        ns = m.namespace_of(obj)
        for vol in spec.get("volumes") or []:
            for key, kind, name_key in (
                ("secret", "Secret", "secretName"),
                ("configMap", "ConfigMap", "name"),
            ):
                if key in vol and not vol[key].get("optional"):
                    name = vol[key].get(name_key)
                    if m.lookup(d.objects, kind, name, ns) is None:
                        yield Problem(
                            "references",
                            d.file(obj),
                            f"{m.ref(obj)} volumes[{vol['name']}]",
                            f"{kind}/{name} does not exist",
                        )
        if obj["kind"] == "StatefulSet" and obj["spec"].get("serviceName") not in d.services:
            yield Problem(
                "references",
                d.file(obj),
                f"{m.ref(obj)} spec.serviceName",
                f"no Service {obj['spec'].get('serviceName')}",
            )
    for svc in d.services.values():
        if not d.selected_pods(svc):
            yield Problem(
                "references", d.file(svc), f"{m.ref(svc)} spec.selector", "selects no pod of any workload"
            )


def check_ports(ctx: Context, d: Deployed) -> Iterator[Problem]:
    for svc in d.services.values():
        pods = d.selected_pods(svc)
        for p in svc["spec"].get("ports") or []:
            target = p.get("targetPort", p.get("port"))
            if pods and not any(target in m.container_ports(c) for c in pods):
                offered = sorted({v for c in pods for v in m.container_ports(c).values()})
                yield Problem(
                    "ports",
                    d.file(svc),
                    f"{m.ref(svc)} ports[{p.get('name', p.get('port'))}].targetPort",
                    f"{target} is not a containerPort of the pods it selects ({offered})",
                )
    for cref in m.containers(d.objects):
        ports = m.container_ports(cref)
        for probe_name in ("readinessProbe", "livenessProbe", "startupProbe"):
            probe = cref.container.get(probe_name) or {}
            action = probe.get("httpGet") or probe.get("tcpSocket")
            if action and action.get("port") not in ports:
                yield Problem(
                    "ports",
                    d.file(cref.workload),
                    f"{cref.field} {probe_name}.port",
                    f"{action.get('port')} is not a containerPort ({sorted(set(ports.values()))})",
                )
        argv = d.argv(cref)
        port = m.option(argv, "--port")
        if port and argv[:2] and Path(argv[0]).name == "mlflow" and int(port) not in ports:
            yield Problem(
                "ports",
                d.file(cref.workload),
                f"{cref.field} --port",
                f"the server listens on {port}, the containerPort is {sorted(set(ports.values()))}",
            )


def check_urls(ctx: Context, d: Deployed) -> Iterator[Problem]:
    names = ", ".join(sorted(d.services))
    for url in _urls(d, ctx.pipeline_for(d)):
        target = _cluster_host(url.parsed.hostname or "")
        if target is None:
            continue
        service, namespace = target
        if namespace is None:
            if service not in d.services:
                yield Problem(
                    "urls", url.file, url.field, f"host {service} is no Service in {d.namespace} ({names})"
                )
                continue
            if url.cross_namespace:
                yield Problem(
                    "urls",
                    url.file,
                    url.field,
                    f"host {service} resolves only inside namespace {d.namespace}; the pipeline's pods run "
                    f"in KFP's namespace: use {service}.{d.namespace}.svc.cluster.local",
                )
                continue
        elif namespace != d.namespace:
            if service in d.services:
                yield Problem(
                    "urls",
                    url.file,
                    url.field,
                    f"{url.parsed.hostname} names namespace {namespace}, but Service {service} is deployed "
                    f"to namespace {d.namespace}",
                )
            continue  # another namespace's service (e.g. KFP's ml-pipeline.kubeflow)
        elif service not in d.services:
            yield Problem(
                "urls",
                url.file,
                url.field,
                f"{url.parsed.hostname}: no Service {service} in {d.namespace} ({names})",
            )
            continue
        svc = d.services[service]
        ports = [p.get("port") for p in svc["spec"].get("ports") or []]
        if url.port not in ports:
            yield Problem(
                "urls",
                url.file,
                url.field,
                f"port {url.port} of {url.value} is not a port of Service {service} ({ports})",
            )


def check_mlflow_store(ctx: Context, d: Deployed) -> Iterator[Problem]:
    cref = d.mlflow_server()
    if cref is None:
        return
    for opt in ("--backend-store-uri", "--registry-store-uri"):
        uri = m.option(d.argv(cref), opt) or ""
        scheme = uri.split("://")[0]
        if scheme in ("postgresql", "postgres"):
            yield Problem(
                "mlflow-store",
                d.file(cref.workload),
                f"{cref.field} {opt}",
                f"{scheme}:// leaves the driver to SQLAlchemy (2.1 picks psycopg 3, the image has psycopg2): "
                "use postgresql+psycopg2://",
            )


def _allowed_hosts(d: Deployed, cref: m.ContainerRef) -> list[str] | None:
    value = m.option(d.argv(cref), "--allowed-hosts") or d.env(cref).get(ALLOWED_HOSTS_ENV)
    return [h.strip() for h in value.split(",") if h.strip()] if value else None


def check_mlflow_hosts(ctx: Context, d: Deployed) -> Iterator[Problem]:
    cref = d.mlflow_server()
    if cref is None:
        return
    svc = d.service_of(cref)
    file = d.file(cref.workload)
    allowed = _allowed_hosts(d, cref)
    if allowed is None:
        yield Problem(
            "mlflow-hosts",
            file,
            f"{cref.field} env.{ALLOWED_HOSTS_ENV}",
            "not set: MLflow 3.17 answers 403 'Invalid Host header' to every in-cluster Service name",
        )
        return
    if svc is not None:
        for port in [p.get("port") for p in svc["spec"].get("ports") or []]:
            for host in service_host_forms(svc["metadata"]["name"], d.namespace or ""):
                if not host_allowed(allowed, f"{host}:{port}"):
                    yield Problem(
                        "mlflow-hosts",
                        file,
                        f"{cref.field} env.{ALLOWED_HOSTS_ENV}",
                        f"does not admit {host}:{port}",
                    )
        for url in _urls(d, ctx.pipeline_for(d)):
            if url.parsed.scheme.startswith("http") and _target(d, url) is svc:
                if not host_allowed(allowed, url.host_header):
                    yield Problem(
                        "mlflow-hosts",
                        url.file,
                        url.field,
                        f"MLflow refuses Host {url.host_header} (not in {ALLOWED_HOSTS_ENV} of {file})",
                    )
    probe = (cref.container.get("readinessProbe") or {}).get("httpGet")
    field_name = f"{cref.field} readinessProbe.httpGet"
    if probe is None:
        yield Problem(
            "mlflow-hosts", file, field_name, "MLflow's readiness needs an HTTP probe of a host-checked path"
        )
        return
    path = str(probe.get("path", "/")).split("?")[0]
    if path in MLFLOW_HOST_EXEMPT_PATHS:
        yield Problem(
            "mlflow-hosts",
            file,
            f"{field_name}.path",
            f"{path} skips MLflow's Host check, so a wrong {ALLOWED_HOSTS_ENV} leaves the pod ready: probe an "
            "API path with the in-cluster Host header",
        )
    headers = {h["name"].lower(): h["value"] for h in probe.get("httpHeaders") or []}
    if "host" not in headers:
        yield Problem(
            "mlflow-hosts",
            file,
            f"{field_name}.httpHeaders",
            "no Host header: the kubelet sends the pod IP, not the Service name",
        )
    elif not host_allowed(allowed, headers["host"]):
        yield Problem(
            "mlflow-hosts",
            file,
            f"{field_name}.httpHeaders.Host",
            f"{headers['host']} is not in {ALLOWED_HOSTS_ENV}: the pod never becomes ready",
        )


def _odqa_images(d: Deployed, repo: str) -> dict[str, list[m.ContainerRef]]:
    images: dict[str, list[m.ContainerRef]] = {}
    for cref in m.containers(d.objects):
        if split_image(cref.container.get("image", ""))[0] == repo:
            images.setdefault(cref.container["image"], []).append(cref)
    return images


def check_images(ctx: Context, d: Deployed) -> Iterator[Problem]:
    default = ctx.inputs.default_image
    if not default:
        yield Problem("images", COMPONENTS_PY, "DEFAULT_IMAGE", "cannot read the pipeline's default image")
        return
    repo, tag = split_image(default)
    images = _odqa_images(d, repo)
    if len(images) > 1:
        listing = "; ".join(
            f"{img} in {', '.join(c.field for c in crefs)}" for img, crefs in sorted(images.items())
        )
        first = next(iter(sorted(images.items())))[1][0]
        yield Problem(
            "images",
            d.file(first.workload),
            f"{first.field} image",
            f"one odqa image per deployment: {listing}",
        )
    if d.name == "base":
        for image, crefs in images.items():
            if image != default:
                yield Problem(
                    "images",
                    d.file(crefs[0].workload),
                    f"{crefs[0].field} image",
                    f"{image} differs from the pipeline's default image {default} ({COMPONENTS_PY} DEFAULT_IMAGE)",
                )
    job = d.schedule_job()
    if job is not None:
        compiled_for = d.env(job).get("ODQA_IMAGE") or default
        runs_in = job.container.get("image")
        if compiled_for != runs_in:
            yield Problem(
                "images",
                d.file(job.workload),
                f"{job.field} env.ODQA_IMAGE",
                f"the recurring run's components would run in {compiled_for}, but this deployment's odqa image "
                f"is {runs_in} (set ODQA_IMAGE in the job's ConfigMap)",
            )
    if d.name == "base":
        cuda = default_image_from_source(Path(ctx.inputs.root) / COMPONENTS_PY, "DEFAULT_CUDA_IMAGE")
        for target, pipeline in sorted(ctx.pipelines.items()):
            for name, c in sorted(pipeline.executors().items()):
                # gpu target: train_reader and predict in the CUDA image, every other stage in the CPU one.
                expected = cuda if target == "gpu" and name in GPU_EXECUTORS else default
                if c.get("image") != expected:
                    yield Problem(
                        "images",
                        pipeline.path,
                        f"deploymentSpec.executors.{name}.container.image",
                        f"{c.get('image')} differs from the default image {expected}: recompile (`make compile`)",
                    )
                    break


def _dockerfile(root: Path, repo: str) -> Path:
    return Path(root) / IMAGES_DIR / repo.rsplit("/", 1)[-1] / "Dockerfile"


def check_elasticsearch(ctx: Context, d: Deployed) -> Iterator[Problem]:
    for obj in d.objects:
        spec = m.pod_spec(obj)
        if not spec:
            continue
        es = [c for c in spec.get("containers", []) if "elasticsearch" in split_image(c.get("image", ""))[0]]
        if not es:
            continue
        c = es[0]
        file = d.file(obj)
        repo, tag = split_image(c["image"])
        where = f"{m.ref(obj)} containers[{c['name']}].image"
        server = tag
        if not repo.startswith("docker.elastic.co/"):
            dockerfile = _dockerfile(ctx.inputs.root, repo)
            rel = str(dockerfile.relative_to(ctx.inputs.root))
            if not dockerfile.is_file():
                yield Problem(
                    "elasticsearch", file, where, f"{c['image']} is built here, but {rel} does not exist"
                )
                continue
            text = dockerfile.read_text(encoding="utf-8")
            base = re.search(r"^FROM\s+(\S+)", text, re.M)
            server = split_image(base.group(1))[1] if base else None
            if server != tag:
                yield Problem(
                    "elasticsearch", rel, "FROM", f"builds Elasticsearch {server}, the manifests tag it {tag}"
                )
            if "analysis-nori" not in text:
                yield Problem("elasticsearch", rel, "RUN", "does not install analysis-nori")
        client = ctx.inputs.es_client_version
        if _major(client) != _major(server):
            yield Problem(
                "elasticsearch",
                file,
                where,
                f"server {server} but the elasticsearch client is {client}: a client of another major sends "
                f"compatible-with={_major(client)} and the server answers 400 (pin "
                f"elasticsearch>={_major(server)},<{(_major(server) or 0) + 1} in pyproject.toml)",
            )
        for cref in m.containers([obj]):
            argv = d.argv(cref)
            if any(
                a.endswith("elasticsearch-plugin") and "install" in argv[i + 1 : i + 2]
                for i, a in enumerate(argv)
            ):
                yield Problem(
                    "elasticsearch",
                    file,
                    f"{cref.field} args",
                    "downloads a plugin at every pod start: bake it into the image (manifests/images/)",
                )
        if not (spec.get("securityContext") or {}).get("fsGroup"):
            yield Problem(
                "elasticsearch",
                file,
                f"{m.ref(obj)} spec.template.spec.securityContext.fsGroup",
                "not set: Elasticsearch (uid 1000) cannot write a freshly provisioned data volume",
            )


def _s3_bucket(uri: str | None) -> str | None:
    if uri and uri.startswith("s3://"):
        return urlparse(uri).netloc
    return None


def _created_buckets(d: Deployed) -> tuple[dict[str, m.ContainerRef], list[Problem]]:
    from odqa.deploy.buckets import parser

    buckets: dict[str, m.ContainerRef] = {}
    problems = []
    for cref in d.bucket_steps():
        argv = d.argv(cref)
        args = argv[argv.index("odqa.deploy.buckets") + 1 :]
        try:
            parsed = parser().parse_args(args)
        except SystemExit:
            problems.append(
                Problem("buckets", d.file(cref.workload), f"{cref.field} args", f"bad arguments {args}")
            )
            continue
        buckets.update(dict.fromkeys(parsed.buckets, cref))
    return buckets, problems


def check_buckets(ctx: Context, d: Deployed) -> Iterator[Problem]:
    buckets, problems = _created_buckets(d)
    yield from problems
    server = d.mlflow_server()
    needed: list[tuple[str, str, str]] = []
    if server is not None:
        argv = d.argv(server)
        for opt in ("--artifacts-destination", "--default-artifact-root"):
            bucket = _s3_bucket(m.option(argv, opt))
            if bucket:
                needed.append((bucket, d.file(server.workload), f"{server.field} {opt}"))
        endpoint = d.env(server).get("MLFLOW_S3_ENDPOINT_URL")
        for cref in {id(c): c for c in buckets.values()}.values():
            from odqa.deploy.buckets import endpoint as bucket_endpoint

            if bucket_endpoint(d.env(cref)) != endpoint:
                yield Problem(
                    "buckets",
                    d.file(cref.workload),
                    f"{cref.field} env.MLFLOW_S3_ENDPOINT_URL",
                    f"creates buckets at {bucket_endpoint(d.env(cref))}, MLflow stores artifacts at {endpoint}",
                )
    for cm in m.find(d.objects, "ConfigMap"):
        for key, value in (cm.get("data") or {}).items():
            bucket = _s3_bucket(str(value))
            if bucket:
                needed.append((bucket, d.file(cm), f"{m.ref(cm)} data.{key}"))
    for bucket, file, where in needed:
        if bucket not in buckets:
            made = ", ".join(sorted(buckets)) or "none"
            yield Problem(
                "buckets",
                file,
                where,
                f"bucket {bucket} is created by no init step (odqa.deploy.buckets creates: {made})",
            )


def _param_value(argv: list[str], name: str) -> tuple[bool, str | None]:
    """(passed, value) of a pipeline parameter on an `odqa pipeline schedule/submit` command line."""
    passed, value = False, None
    flag = "--" + name.replace("_", "-")
    if m.option(argv, flag) is not None or flag in argv:
        passed, value = True, m.option(argv, flag)
    for i, a in enumerate(argv):
        if a == "--param" and i + 1 < len(argv) and argv[i + 1].startswith(name + "="):
            passed, value = True, argv[i + 1].split("=", 1)[1]
    if value is not None:
        try:
            decoded = json.loads(value)
            value = decoded if isinstance(decoded, str) else value
        except json.JSONDecodeError:
            pass
    return passed, value


def check_data_uri(ctx: Context, d: Deployed) -> Iterator[Problem]:
    job = d.schedule_job()
    if job is None:
        return
    passed, value = _param_value(d.argv(job), "data_uri")
    pipeline = ctx.pipeline_for(d)
    default = (pipeline.defaults().get("data_uri") if pipeline else "") or ""
    if not (value if passed else default):
        yield Problem(
            "data-uri",
            d.file(job.workload),
            f"{job.field} args data_uri",
            "the recurring run gets data_uri '' (KorQuAD under ../shared/data, which is not in the image): "
            "pass --data-uri with an s3:// URI or a mounted path",
        )


def check_gpu(ctx: Context, d: Deployed) -> Iterator[Problem]:
    pools = [cm for cm in m.find(d.objects, "ConfigMap") if "acceleratorResource" in (cm.get("data") or {})]
    pipeline = ctx.pipeline_for(d)
    if pipeline is not None and not pools:
        asking = sorted(
            n for n, c in pipeline.executors().items() if c.get("resources", {}).get("accelerator")
        )
        if asking:
            yield Problem(
                "gpu",
                pipeline.path,
                "resources.accelerator",
                f"{', '.join(asking)} ask for a GPU, but this deployment has no GPU node pool: schedule the cpu "
                f"pipeline ({TARGET_ENV}=cpu)",
            )
    for cm in pools:
        data = cm["data"]
        file = d.file(cm)
        if pipeline is not None:
            accelerators = {
                name: c.get("resources", {}).get("accelerator", {}).get("resourceType")
                for name, c in pipeline.executors().items()
                if c.get("resources", {}).get("accelerator")
            }
            if not accelerators:
                yield Problem(
                    "gpu", pipeline.path, "resources.accelerator",
                    f"no component asks for a GPU: schedule the gpu pipeline ({TARGET_ENV}=gpu)",
                )  # fmt: skip
            for name, resource in sorted(accelerators.items()):
                if resource != data["acceleratorResource"]:
                    yield Problem(
                        "gpu",
                        file,
                        f"{m.ref(cm)} data.acceleratorResource",
                        f"{data['acceleratorResource']}, but {pipeline.path} {name} asks for {resource}",
                    )
                k8s = pipeline.k8s_executors().get(name, {})
                labels = k8s.get("nodeSelector", {}).get("labels", {})
                if labels.get(data.get("nodeSelectorKey")) != data.get("nodeSelectorValue"):
                    yield Problem(
                        "gpu",
                        file,
                        f"{m.ref(cm)} data.nodeSelectorKey/nodeSelectorValue",
                        f"{data.get('nodeSelectorKey')}={data.get('nodeSelectorValue')}, but {pipeline.path} "
                        f"{name} selects {labels}",
                    )
                taint_key = str(data.get("taint", "")).split("=")[0].split(":")[0]
                keys = [t.get("key") for t in k8s.get("tolerations") or []]
                if taint_key not in keys:
                    yield Problem(
                        "gpu",
                        file,
                        f"{m.ref(cm)} data.taint",
                        f"{taint_key}, but {pipeline.path} {name} tolerates {keys}",
                    )
        if data.get("nodeSelectorKey") == GKE_ACCELERATOR_LABEL:
            for ds in m.find(d.objects, "DaemonSet"):
                images = [c.get("image", "") for c in ds["spec"]["template"]["spec"].get("containers", [])]
                if any("device-plugin" in i for i in images):
                    yield Problem(
                        "gpu",
                        d.file(ds),
                        m.ref(ds),
                        "GKE GPU node pools run GKE's own NVIDIA device plugin: a second one fights it for the GPUs",
                    )


GPU_EXECUTORS = ("exec-train-reader", "exec-predict", "exec-pretrain")
TRAINJOB_SPEC_FIELDS = {
    "runtimeRef",
    "trainer",
    "initializer",
    "labels",
    "annotations",
    "managedBy",
    "runtimePatches",
    "suspend",
}  # fmt: skip  (Trainer >= 2.2: runtimePatches replaced podTemplateOverrides)


def _trainjob_problems(obj: dict) -> Iterator[tuple[str, str]]:
    """(field, message) for a TrainJob (trainer.kubeflow.org/v1alpha1) missing what the torch runtime needs."""
    spec = obj.get("spec") or {}
    if not (spec.get("runtimeRef") or {}).get("name"):
        yield "spec.runtimeRef.name", "missing: the TrainingRuntime to run (e.g. torch-distributed)"
    trainer = spec.get("trainer") or {}
    for key in ("numNodes", "numProcPerNode"):
        value = trainer.get(key)
        if value is not None and not (isinstance(value, int) and value >= 1) and value != "auto":
            yield f"spec.trainer.{key}", f"must be a positive integer, got {value!r}"
    if not trainer.get("image"):
        yield "spec.trainer.image", "missing"
    if "odqa.reader.train_ddp" not in (trainer.get("command") or []):
        yield "spec.trainer.command", "does not run odqa.reader.train_ddp (the reader's torchrun entry point)"
    unknown = sorted(set(spec) - TRAINJOB_SPEC_FIELDS)
    if unknown:
        yield "spec", f"unknown fields {unknown}"


def check_trainer(ctx: Context, d: Deployed) -> Iterator[Problem]:
    """manifests/trainer/*.yaml: TrainJobs by hand (no schema), their image = the pipeline's CUDA image."""
    root = Path(ctx.inputs.root)
    cuda = default_image_from_source(root / COMPONENTS_PY, "DEFAULT_CUDA_IMAGE")
    for path in sorted((root / TRAINER_DIR).glob("*.yaml")):
        rel = f"{TRAINER_DIR}/{path.name}"
        try:
            docs = [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]
        except yaml.YAMLError as e:
            yield Problem("trainer", rel, "file", f"not YAML: {str(e).splitlines()[0]}")
            continue
        for obj in docs:
            if (obj.get("apiVersion"), obj.get("kind")) not in CRD_KINDS:
                continue
            for field_name, message in _trainjob_problems(obj):
                yield Problem("trainer", rel, f"{m.ref(obj)} {field_name}", message)
            image = ((obj.get("spec") or {}).get("trainer") or {}).get("image")
            if image and cuda and image != cuda:
                yield Problem(
                    "trainer",
                    rel,
                    f"{m.ref(obj)} spec.trainer.image",
                    f"{image}, but the pipeline's CUDA image is {cuda}",
                )


# The serving Deployment (manifests/base/serving.yaml): `odqa serve` reaches the registry the pipeline
# registers into, follows the model name it registers, gets the S3 settings MLflow's server has, and its
# probes ask the endpoints that tell loading from ready.
SERVE_PROBES = {"readinessProbe": "/ready", "livenessProbe": "/health"}
S3_ENDPOINT_ENV = "MLFLOW_S3_ENDPOINT_URL"


def check_serving(ctx: Context, d: Deployed) -> Iterator[Problem]:
    pipeline = ctx.pipeline_for(d)
    defaults = pipeline.defaults() if pipeline is not None else {}
    mlflow = d.mlflow_server()
    for cref in d.serve_containers():
        file, argv, env = d.file(cref.workload), d.argv(cref), d.env(cref)
        uri = m.option(argv, "--tracking-uri") or env.get("MLFLOW_TRACKING_URI")
        expected_uri = defaults.get("tracking_uri")
        if not uri:
            yield Problem(
                "serving", file, f"{cref.field} --tracking-uri", "not set: the service reads no registry"
            )
        elif expected_uri and uri != expected_uri:
            yield Problem(
                "serving",
                file,
                f"{cref.field} --tracking-uri",
                f"{uri}, but the pipeline registers models at {expected_uri}",
            )
        model = m.option(argv, "--model") or "models:/odqa@champion"
        name = (
            model.removeprefix("models:/").split("@")[0].split("/")[0]
            if model.startswith("models:/")
            else None
        )
        expected_name = defaults.get("model_name")
        if name and expected_name and name != expected_name:
            yield Problem(
                "serving",
                file,
                f"{cref.field} --model",
                f"{model} serves model {name}, but the pipeline registers {expected_name}",
            )
        host = m.option(argv, "--host") or "127.0.0.1"
        if host not in ("0.0.0.0", "::"):
            yield Problem(
                "serving",
                file,
                f"{cref.field} --host",
                f"{host}: only the pod itself can reach it (use 0.0.0.0)",
            )
        port = m.option(argv, "--port") or "8080"
        ports = m.container_ports(cref)
        if not port.isdigit() or int(port) not in ports.values():
            yield Problem(
                "serving",
                file,
                f"{cref.field} --port",
                f"the server listens on {port}, the containerPort is {sorted(set(ports.values()))}",
            )
        for probe_name, path in SERVE_PROBES.items():
            action = (cref.container.get(probe_name) or {}).get("httpGet")
            if action is None:
                yield Problem("serving", file, f"{cref.field} {probe_name}", f"missing: httpGet {path}")
                continue
            if action.get("path") != path:
                yield Problem(
                    "serving",
                    file,
                    f"{cref.field} {probe_name}.httpGet.path",
                    f"{action.get('path')}, expected {path} (it tells loading from ready)",
                )
            if port.isdigit() and ports.get(action.get("port")) != int(port):
                yield Problem(
                    "serving",
                    file,
                    f"{cref.field} {probe_name}.httpGet.port",
                    f"{action.get('port')} is not the port the server listens on ({port})",
                )
        if mlflow is not None:
            # Model artifacts on S3 are read with the keys and endpoint MLflow's server uses.
            wanted = [
                i["secretRef"]["name"] for i in mlflow.container.get("envFrom") or [] if "secretRef" in i
            ]
            have = {i["secretRef"]["name"] for i in cref.container.get("envFrom") or [] if "secretRef" in i}
            for secret in wanted:
                if secret in have:
                    continue
                if any(k.startswith("AWS_") for k in _secret_keys(d, secret)):
                    yield Problem(
                        "serving",
                        file,
                        f"{cref.field} envFrom",
                        f"no secretRef {secret}: the S3 keys MLflow's artifacts need",
                    )
            endpoint = d.env(mlflow).get(S3_ENDPOINT_ENV)
            if endpoint and env.get(S3_ENDPOINT_ENV) != endpoint:
                yield Problem(
                    "serving",
                    file,
                    f"{cref.field} env.{S3_ENDPOINT_ENV}",
                    f"{env.get(S3_ENDPOINT_ENV)}, but MLflow's server uses {endpoint}",
                )
    for hpa in m.find(d.objects, "HorizontalPodAutoscaler"):
        target = (hpa.get("spec") or {}).get("scaleTargetRef") or {}
        found = m.find(d.objects, target.get("kind", ""), target.get("name"))
        if not found:
            yield Problem(
                "serving",
                d.file(hpa),
                f"{m.ref(hpa)} spec.scaleTargetRef",
                f"no {target.get('kind')}/{target.get('name')} in the manifests",
            )
            continue
        uses_cpu = any(
            (x.get("resource") or {}).get("name") == "cpu" for x in (hpa["spec"].get("metrics") or [])
        )
        spec = m.pod_spec(found[0]) or {}
        if uses_cpu and not all(
            ((c.get("resources") or {}).get("requests") or {}).get("cpu")
            for c in spec.get("containers") or []
        ):
            yield Problem(
                "serving",
                d.file(hpa),
                f"{m.ref(hpa)} spec.metrics",
                f"scales on CPU utilisation, but {m.ref(found[0])} requests no CPU (utilisation is undefined)",
            )


def _secret_keys(d: Deployed, name: str) -> set[str]:
    found = m.find(d.objects, "Secret", name)
    if not found:
        return set()
    return set((found[0].get("stringData") or {}) | (found[0].get("data") or {}))


CHECKS: dict[str, Check] = {
    "schema": check_schema,
    "namespace": check_namespaces,
    "references": check_references,
    "ports": check_ports,
    "urls": check_urls,
    "mlflow-hosts": check_mlflow_hosts,
    "mlflow-store": check_mlflow_store,
    "images": check_images,
    "elasticsearch": check_elasticsearch,
    "buckets": check_buckets,
    "data-uri": check_data_uri,
    "gpu": check_gpu,
    "trainer": check_trainer,
    "serving": check_serving,
}


# ---------------------------------------------------------------------------------------------------
# Schema validation (kubernetes-validate's schemas, one compiled validator per kind)


@functools.lru_cache(maxsize=8)
def _registry(version: str):
    from kubernetes_validate import utils
    from referencing import Registry, Resource

    defs = utils.schema_contents(f"kubernetes-json-schema/v{version}-local-strict/_definitions.json", version)
    return Resource.from_contents(defs) @ Registry(), utils


@functools.lru_cache(maxsize=128)
def _validator(kind: str, api_version: str, version: str):
    import jsonschema
    from referencing import Resource

    registry, utils = _registry(version)
    api = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    try:
        schema = utils.schema_contents(
            f"kubernetes-json-schema/v{version}-local-strict/{kind.lower()}-{api}.json", version
        )
    except FileNotFoundError:
        return None
    return jsonschema.validators.Draft202012Validator(
        schema, registry=Resource.from_contents(schema) @ registry
    )


def _schema_version(version: str) -> str:
    from kubernetes_validate import utils

    wanted = utils.major_minor(version)
    known = [v for v in utils.all_versions() if utils.major_minor(v) == wanted]
    if not known:
        raise InputError(
            f"kubernetes-validate {importlib.metadata.version('kubernetes-validate')} has no schemas for "
            f"Kubernetes {version} (it has {', '.join(utils.all_versions())})"
        )
    return known[-1]


def validate_object(obj: dict[str, Any], version: str) -> tuple[str, str] | None:
    """(field, message) of the first schema error of a Kubernetes object (strict: unknown fields are
    errors), None when it validates."""
    if "kind" not in obj or "apiVersion" not in obj:
        return "kind/apiVersion", "missing"
    if (obj["apiVersion"], obj["kind"]) in CRD_KINDS:
        return None  # no OpenAPI schema for a custom resource: check_trainer checks it by hand
    validator = _validator(obj["kind"], obj["apiVersion"], _schema_version(version))
    if validator is None:
        return "apiVersion", f"no schema for {obj['kind']} {obj['apiVersion']} in Kubernetes {version}"
    error = next(iter(sorted(validator.iter_errors(obj), key=lambda e: list(e.absolute_path))), None)
    if error is None:
        return None
    path = ".".join(str(p) for p in error.absolute_path) or "(object)"
    message = error.message.splitlines()[0]
    return path, (message[:200] + "...") if len(message) > 200 else message


# ---------------------------------------------------------------------------------------------------
# Running it


@dataclass
class Report:
    problems: list[Problem] = field(default_factory=list)
    built: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        return [str(p) for p in self.problems]


def kustomizations(root: Path) -> list[str]:
    return ["base", *m.overlays(root)]


def build_all(inputs: Inputs) -> tuple[list[Deployed], list[Problem]]:
    root = Path(inputs.root)
    sources = m.source_files(root)
    deployed, problems = [], []
    for name in kustomizations(root):
        kfile = f"{m.kustomization_dir(name)}/kustomization.yaml"
        try:
            objects = m.build(root, name, inputs.kubectl)
        except InputError as e:
            if str(e).startswith("kubectl not found"):
                raise
            problems.append(Problem("kustomize", kfile, "kustomize build", str(e).split(": ", 1)[-1]))
            continue
        deployed.append(Deployed(name, objects, sources, kfile))
    return deployed, problems


def run(inputs: Inputs | None = None, checks: Iterable[str] | None = None) -> Report:
    """Every problem of the deployment under inputs.root; `checks` limits which cross-checks run
    (kustomize builds always run). InputError only when kubectl is missing."""
    inputs = (inputs or Inputs()).resolved()
    selected = list(checks) if checks is not None else list(CHECKS)
    unknown = sorted(set(selected) - set(CHECKS))
    if unknown:
        raise InputError(f"unknown checks {unknown}; known: {sorted(CHECKS)}")
    deployed, problems = build_all(inputs)
    pipelines: dict[str, Pipeline] = {}
    for target, rel in PIPELINE_YAMLS.items():
        try:
            pipelines[target] = Pipeline.load(inputs.root, rel)
        except InputError as e:
            problems.append(Problem("pipeline", rel, "file", str(e).split(": ", 1)[-1]))
    ctx = Context(inputs, pipelines)
    seen: dict[Problem, list[str]] = {}
    for d in deployed:
        for name in selected:
            for p in CHECKS[name](ctx, d):
                seen.setdefault(p, []).append(d.name)
    names = [d.name for d in deployed]
    for p, where in seen.items():
        # A problem in only some builds (an overlay's patch) says which.
        if sorted(set(where)) != sorted(names):
            p = Problem(p.check, p.file, p.field, f"{p.message} (in {', '.join(sorted(set(where)))})")
        problems.append(p)
    return Report(problems, names)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m odqa.deploy.check", description=__doc__.split("\n\n")[0])
    p.add_argument("--root", default=str(m.REPO), help="repository root (default: this checkout)")
    p.add_argument("--kubernetes-version", default=KUBERNETES_VERSION)
    p.add_argument("--check", action="append", choices=sorted(CHECKS), help="run only these cross-checks")
    args = p.parse_args(argv)
    try:
        report = run(Inputs(Path(args.root), kubernetes_version=args.kubernetes_version), args.check)
    except InputError as e:
        print(f"cluster-check: error: {e}", file=sys.stderr)
        return 2
    for line in report.lines():
        print(line)
    built = ", ".join(report.built)
    if report.problems:
        print(f"cluster-check: {len(report.problems)} problem(s) in {built}", file=sys.stderr)
        return 1
    print(f"cluster-check: ok ({built}; {len(CHECKS)} checks)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
