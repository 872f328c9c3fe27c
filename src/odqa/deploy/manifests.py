"""Read what manifests/ deploys: build an overlay with kustomize (`kubectl kustomize`), then find
objects, containers, their environment (env + envFrom, as the kubelet resolves it) and their command
lines ($(VAR) expanded the way Kubernetes expands command and args)."""

from __future__ import annotations

import base64
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from odqa.errors import InputError

REPO = Path(__file__).resolve().parents[3]
MANIFESTS_DIR = "manifests"
KUBECTL_HINT = (
    "kubectl not found: install it (Debian: `apt-get install -y kubectl`; `make cluster-check` and "
    "`make test` do it when run as root)"
)
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet")
CLUSTER_SCOPED_KINDS = {
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "PersistentVolume",
    "PriorityClass",
    "StorageClass",
    "Node",
    "RuntimeClass",
}


def overlays(root: Path = REPO) -> list[str]:
    """The overlay names under manifests/overlays (each a folder with a kustomization.yaml)."""
    base = Path(root) / MANIFESTS_DIR / "overlays"
    return sorted(p.parent.name for p in base.glob("*/kustomization.yaml"))


def kustomization_dir(name: str) -> str:
    """manifests/base for "base", else manifests/overlays/<name> (relative to the repository root)."""
    return f"{MANIFESTS_DIR}/base" if name == "base" else f"{MANIFESTS_DIR}/overlays/{name}"


def build(root: Path, name: str, kubectl: str | None = None) -> list[dict[str, Any]]:
    """The objects `kubectl kustomize manifests/overlays/<name>` (or manifests/base) renders; InputError
    in one line when kubectl is missing or kustomize refuses the kustomization."""
    kubectl = kubectl or shutil.which("kubectl")
    if not kubectl:
        raise InputError(KUBECTL_HINT)
    folder = Path(root) / kustomization_dir(name)
    if not (folder / "kustomization.yaml").is_file():
        raise InputError("no kustomization.yaml", path=folder)
    proc = subprocess.run(
        [kubectl, "kustomize", str(folder)], capture_output=True, text=True, timeout=120, check=False
    )
    if proc.returncode != 0:
        lines = [line for line in proc.stderr.strip().splitlines() if line.strip()] or ["(no output)"]
        # kubectl logs through klog: keep the err="..." text
        err = re.search(r'err="(.*)"\s*$', lines[-1])
        why = err.group(1).replace('\\"', '"') if err else lines[-1]
        raise InputError(f"kustomize build failed: {why}", path=folder / "kustomization.yaml")
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


def source_files(root: Path) -> dict[tuple[str, str], str]:
    """(kind, name) -> the manifests file (relative to root) that defines the object, for messages."""
    found: dict[tuple[str, str], str] = {}
    base = Path(root) / MANIFESTS_DIR
    # base first: an object patched by an overlay is still defined in base
    for path in sorted(base.rglob("*.yaml"), key=lambda p: ("overlays" in p.parts, str(p))):
        if path.name == "kustomization.yaml":
            continue
        try:
            docs = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
        except yaml.YAMLError:
            continue
        for doc in docs:
            if isinstance(doc, dict) and "kind" in doc and "name" in doc.get("metadata", {}):
                found.setdefault((doc["kind"], doc["metadata"]["name"]), str(path.relative_to(root)))
    return found


def ref(obj: dict[str, Any]) -> str:
    return f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"


def find(objects: list[dict], kind: str, name: str | None = None) -> list[dict]:
    return [o for o in objects if o.get("kind") == kind and (name is None or o["metadata"]["name"] == name)]


def one(objects: list[dict], kind: str, name: str) -> dict:
    found = find(objects, kind, name)
    if len(found) != 1:
        raise InputError(f"expected one {kind}/{name} in the manifests, found {len(found)}")
    return found[0]


def pod_spec(obj: dict[str, Any]) -> dict[str, Any] | None:
    if obj.get("kind") not in WORKLOAD_KINDS:
        return None
    return obj.get("spec", {}).get("template", {}).get("spec")


@dataclass
class ContainerRef:
    """A container of a workload, with where it sits (for messages)."""

    workload: dict[str, Any]
    container: dict[str, Any]
    init: bool
    index: int

    @property
    def field(self) -> str:
        kind = "initContainers" if self.init else "containers"
        return f"{ref(self.workload)} {kind}[{self.container.get('name', self.index)}]"


def containers(objects: list[dict]) -> Iterator[ContainerRef]:
    for obj in objects:
        spec = pod_spec(obj)
        if not spec:
            continue
        for init, key in ((True, "initContainers"), (False, "containers")):
            for i, c in enumerate(spec.get(key) or []):
                yield ContainerRef(obj, c, init, i)


def container(objects: list[dict], kind: str, name: str, container_name: str) -> ContainerRef:
    for c in containers(find(objects, kind, name)):
        if c.container.get("name") == container_name:
            return c
    raise InputError(f"{kind}/{name} has no container {container_name!r}")


def _object_data(obj: dict[str, Any]) -> dict[str, str]:
    data = {k: str(v) for k, v in (obj.get("data") or {}).items()}
    if obj.get("kind") == "Secret":
        data = {k: base64.b64decode(v).decode("utf-8") for k, v in data.items()}
        data.update({k: str(v) for k, v in (obj.get("stringData") or {}).items()})
    return data


def namespace_of(obj: dict[str, Any]) -> str | None:
    if obj.get("kind") in CLUSTER_SCOPED_KINDS:
        return None
    return obj.get("metadata", {}).get("namespace") or "default"


def lookup(objects: list[dict], kind: str, name: str, namespace: str | None) -> dict[str, Any] | None:
    for o in find(objects, kind, name):
        if namespace_of(o) == namespace:
            return o
    return None


_VAR = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion of command, args and env values: unknown references stay as they
    are, $$ is a literal $."""

    def sub(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))

    return _VAR.sub(sub, text)


def environment(
    objects: list[dict], cref: ContainerRef, overrides: dict[str, dict[str, str]] | None = None
) -> dict[str, str]:
    """The container's environment as the kubelet builds it: envFrom (in order), then env (values
    expanded against what came before). `overrides` replaces Secret/ConfigMap keys by object name
    (a local stack uses its own credentials). Missing references are an InputError."""
    overrides = overrides or {}
    ns = namespace_of(cref.workload)
    env: dict[str, str] = {}

    def source(kind: str, name: str) -> dict[str, str]:
        obj = lookup(objects, kind, name, ns)
        if obj is None:
            raise InputError(f"{cref.field} refers to {kind}/{name}, which is not in namespace {ns}")
        return {**_object_data(obj), **overrides.get(name, {})}

    for item in cref.container.get("envFrom") or []:
        for key, kind in (("secretRef", "Secret"), ("configMapRef", "ConfigMap")):
            if key in item:
                prefix = item.get("prefix", "")
                env.update({prefix + k: v for k, v in source(kind, item[key]["name"]).items()})
    for item in cref.container.get("env") or []:
        if "value" in item:
            env[item["name"]] = expand(str(item["value"]), env)
        elif "valueFrom" in item:
            vf = item["valueFrom"]
            for key, kind in (("secretKeyRef", "Secret"), ("configMapKeyRef", "ConfigMap")):
                if key in vf:
                    data = source(kind, vf[key]["name"])
                    if vf[key]["key"] not in data:
                        raise InputError(
                            f"{cref.field}: {kind}/{vf[key]['name']} has no key {vf[key]['key']}"
                        )
                    env[item["name"]] = data[vf[key]["key"]]
        else:
            env[item["name"]] = ""
    return env


def command_line(cref: ContainerRef, env: dict[str, str]) -> list[str]:
    """command + args with $(VAR) expanded (what the container runtime executes)."""
    return [
        expand(str(a), env)
        for a in (cref.container.get("command") or []) + (cref.container.get("args") or [])
    ]


SHELLS = ("sh", "bash", "ash", "dash")
_SHELL_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def words(cref: ContainerRef, env: dict[str, str]) -> list[str]:
    """The command line as words: command + args, and for `sh -c SCRIPT` the script's words with $VAR
    and ${VAR} replaced from env (enough to read the options a manifest passes; not a shell)."""
    argv = command_line(cref, env)
    if len(argv) >= 3 and Path(argv[0]).name in SHELLS and argv[1] == "-c":
        script = _SHELL_VAR.sub(lambda m: env.get(m.group(1) or m.group(2), ""), argv[2])
        argv = shlex.split(script)
        if argv[:1] == ["exec"]:
            argv = argv[1:]
    return argv


def option(argv: list[str], name: str) -> str | None:
    """The value of `--name VALUE` or `--name=VALUE` in argv (the last one wins, as with click)."""
    value = None
    for i, a in enumerate(argv):
        if a == name and i + 1 < len(argv):
            value = argv[i + 1]
        elif a.startswith(name + "="):
            value = a.split("=", 1)[1]
    return value


def replace_option(argv: list[str], name: str, value: str) -> list[str]:
    """argv with every `--name X` / `--name=X` set to value (appended when absent)."""
    out, i, seen = [], 0, False
    while i < len(argv):
        a = argv[i]
        if a == name and i + 1 < len(argv):
            out += [name, value]
            i += 2
            seen = True
            continue
        if a.startswith(name + "="):
            out.append(f"{name}={value}")
            seen = True
        else:
            out.append(a)
        i += 1
    return out if seen else out + [name, value]


def container_ports(cref: ContainerRef) -> dict[str | int, int]:
    """containerPort by number and by name."""
    ports: dict[str | int, int] = {}
    for p in cref.container.get("ports") or []:
        ports[int(p["containerPort"])] = int(p["containerPort"])
        if "name" in p:
            ports[p["name"]] = int(p["containerPort"])
    return ports


def service_port(service: dict[str, Any], name_or_number: str | int | None = None) -> dict[str, Any] | None:
    for p in service.get("spec", {}).get("ports") or []:
        if name_or_number is None or p.get("name") == name_or_number or p.get("port") == name_or_number:
            return p
    return None
