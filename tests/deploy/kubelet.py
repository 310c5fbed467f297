"""Running an overlay's Deployments on this machine as a kubelet would run their containers:
each container's `command` + `args` as a local process with exactly the environment the
manifests give it, its readiness probe polled until it answers, SIGTERM and the termination
grace to stop it (tests/deploy/test_manifests_run.py).

What cannot be the same on one machine is translated, and only that:
- Service names (short, `.ns`, `.ns.svc`, `.ns.svc.cluster.local`) with their ports become
  `127.0.0.1:<port>`: a Service of ours goes to the local port of the pod it selects; the
  operators' Services (Strimzi's `<kafka>-kafka-bootstrap`, CloudNativePG's `<cluster>-rw`) and
  third-party Services (dev's MinIO) go to the stand-ins the test passes (the suite's broker,
  PostgreSQL and S3 server). A value still naming a Service afterwards fails the plan.
- Every pod has its own network namespace in a cluster and one port space here: each
  container port gets a free local port, and a `*_PORT` variable holding a container port's
  number gets that local port.
- A mounted volume is a directory of the pod's own (an emptyDir empty, a Secret's with its
  files); a variable holding a mount path (or a path under it) gets that directory. `/tmp` is
  the pod's TMPDIR.
- Secrets the overlay makes are used as they are; those an operator makes (the database's)
  come from `operator_secrets`; a non-optional reference to a Secret nobody makes fails.
- The image's own environment (PATH to the installed entry points, HOME, TMPDIR) is this
  venv's. The one variable added is YTMAKER_TOPIC_PREFIX, for the shared test broker.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx

from ytmaker_dev.ports import free_port

from .manifests import (
    Obj,
    container_env,
    containers,
    matches,
    of_kind,
    ours,
    pod_labels,
    pod_spec,
    port_number,
    secret_values,
)

VENV_BIN = Path(sys.executable).parent
#: What the shim sets besides the manifests' variables (the image's ENV, the topic prefix).
SHIM_ENV = frozenset({"PATH", "HOME", "TMPDIR", "LANG", "PYTHONUNBUFFERED", "YTMAKER_TOPIC_PREFIX"})


@dataclass
class Pod:
    """One replica of a Deployment, planned: what runs, with what, where it answers."""

    name: str
    command: list[str]
    env: dict[str, str]
    ports: dict[int, int]  # container port -> local port
    readiness: str  # URL
    liveness: str
    grace_s: float
    root: Path
    image: str = ""
    user: str = ""  # runAsUser:runAsGroup
    mounts: dict[str, Path] = field(default_factory=dict)  # mountPath -> host directory
    files: dict[Path, str] = field(default_factory=dict)  # a Secret volume's files
    container: str | None = None  # buildah's working container (images mode)
    process: subprocess.Popen[bytes] | None = None
    log: IO[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.root / "pod.log"


@dataclass
class LocalCluster:
    """`plan()` the pods of `objects` (a rendered overlay), `start()`, `wait_ready()`, `stop()`.

    `stand_ins` maps a Service name of an operator or a third party (no pod of ours behind it)
    to `host:port`; `operator_secrets` holds the Secrets an operator would make.

    With `images=True` each pod runs in its built image instead (`buildah run`, chroot
    isolation, the host's network, the pod's user, its emptyDirs bind-mounted at their mount
    paths, the image's own PATH and HOME): deploy/docker/build.sh must have built them."""

    objects: list[Obj]
    root: Path
    stand_ins: dict[str, str]
    operator_secrets: dict[str, dict[str, str]]
    topic_prefix: str
    namespace: str = ""
    images: bool = False
    storage_driver: str = "vfs"
    pods: dict[str, Pod] = field(default_factory=dict)

    # -- planning ------------------------------------------------------------------------------

    def plan(self) -> dict[str, Pod]:
        self.namespace = self.namespace or self._namespace()
        deployments = ours(self.objects)
        for deployment in deployments:
            replicas = deployment["spec"].get("replicas", 1)
            assert replicas == 1, f"{deployment['metadata']['name']}: the dev overlay runs one"
            (container,) = containers(deployment)
            name = deployment["metadata"]["name"]
            ports = {int(p["containerPort"]): free_port() for p in container.get("ports", [])}
            probe_url = {
                kind: self._probe_url(container, ports, kind)
                for kind in ("readinessProbe", "livenessProbe")
            }
            security = pod_spec(deployment).get("securityContext", {})
            root = self.root / name
            self.pods[name] = Pod(
                image=str(container["image"]),
                user=f"{security.get('runAsUser', 0)}:{security.get('runAsGroup', 0)}",
                mounts={
                    m["mountPath"]: root / m["name"] for m in container.get("volumeMounts", [])
                },
                name=name,
                command=[*container.get("command", []), *container.get("args", [])],
                env={},
                ports=ports,
                readiness=probe_url["readinessProbe"],
                liveness=probe_url["livenessProbe"],
                grace_s=float(pod_spec(deployment).get("terminationGracePeriodSeconds", 30)),
                root=root,
                files=self._secret_files(deployment, root),
            )
        addresses = self._addresses(deployments)
        for deployment in deployments:
            pod = self.pods[deployment["metadata"]["name"]]
            pod.env = self._environment(deployment, pod, addresses)
        return self.pods

    def _secret_files(self, deployment: Obj, root: Path) -> dict[Path, str]:
        """The files of the Secret volumes the container mounts, under the pod's directory."""
        secrets = secret_values(self.objects) | self.operator_secrets
        volumes = {v["name"]: v for v in pod_spec(deployment).get("volumes", [])}
        files = {}
        for mount in containers(deployment)[0].get("volumeMounts", []):
            source = volumes[mount["name"]].get("secret")
            if source is None:
                continue  # an emptyDir
            name = source["secretName"]
            assert name in secrets, f"volume {mount['name']}: Secret {name} is made by nobody"
            items = source.get("items") or [{"key": k, "path": k} for k in secrets[name]]
            for item in items:
                files[root / mount["name"] / item["path"]] = secrets[name][item["key"]]
        return files

    def _namespace(self) -> str:
        namespaces = {o["metadata"].get("namespace", "") for o in self.objects}
        assert len(namespaces) == 1, f"one namespace expected, got {namespaces}"
        return namespaces.pop()

    @staticmethod
    def _probe_url(container: Obj, ports: dict[int, int], kind: str) -> str:
        probe = container[kind]["httpGet"]
        return f"http://127.0.0.1:{ports[port_number(container, probe['port'])]}{probe['path']}"

    def _addresses(self, deployments: list[Obj]) -> dict[tuple[str, int], str]:
        """(Service name, port) -> local `host:port` for every Service the pods may name."""
        addresses: dict[tuple[str, int], str] = {}
        for service in of_kind(self.objects, "Service"):
            name = service["metadata"]["name"]
            backends = [
                d for d in deployments if matches(service["spec"]["selector"], pod_labels(d))
            ]
            for port in service["spec"]["ports"]:
                if backends:
                    (backend,) = backends
                    container = containers(backend)[0]
                    target = port_number(container, port.get("targetPort", port["port"]))
                    local = self.pods[backend["metadata"]["name"]].ports[target]
                    addresses[(name, int(port["port"]))] = f"127.0.0.1:{local}"
                else:
                    assert name in self.stand_ins, f"no stand-in for Service {name}"
                    addresses[(name, int(port["port"]))] = self.stand_ins[name]
        for kafka in of_kind(self.objects, "Kafka"):
            bootstrap = f"{kafka['metadata']['name']}-kafka-bootstrap"
            for listener in kafka["spec"]["kafka"]["listeners"]:
                addresses[(bootstrap, int(listener["port"]))] = self.stand_ins[bootstrap]
        for cluster in of_kind(self.objects, "Cluster"):
            primary = f"{cluster['metadata']['name']}-rw"
            addresses[(primary, 5432)] = self.stand_ins[primary]
        return addresses

    def _resolve_names(self, value: str, addresses: dict[tuple[str, int], str]) -> str:
        for (service, port), local in addresses.items():
            ns = re.escape(self.namespace)
            host = rf"{re.escape(service)}(?:\.{ns}(?:\.svc(?:\.cluster\.local)?)?)?"
            value = re.sub(rf"(?<![\w.-]){host}:{port}(?![\d])", local, value)
        for service, _port in addresses:
            assert not re.search(rf"(?<![\w.-]){re.escape(service)}(?![\w-])", value), (
                f"{value!r} still names Service {service} (no port, or another port?)"
            )
        return value

    def _environment(
        self, deployment: Obj, pod: Pod, addresses: dict[tuple[str, int], str]
    ) -> dict[str, str]:
        container = containers(deployment)[0]
        secrets = secret_values(self.objects) | self.operator_secrets
        mounts = {} if self.images else pod.mounts
        env: dict[str, str] = {}
        for name, var in container_env(self.objects, container).items():
            if var.field is not None:
                assert var.field == "metadata.name", f"{name}: fieldRef {var.field}"
                value = f"{pod.name}-0"
            elif var.secret is not None:
                secret, key = var.secret
                if secret in secrets and key in secrets[secret]:
                    value = secrets[secret][key]
                else:
                    assert var.optional, f"{name}: Secret {secret}/{key} is made by nobody"
                    continue
            else:
                assert var.value is not None
                value = re.sub(
                    r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m[1], m[0]), var.value
                )
            value = self._resolve_names(value, addresses)
            if name.endswith("_PORT") and value.isdigit() and int(value) in pod.ports:
                value = str(pod.ports[int(value)])
            for path, local in sorted(mounts.items(), key=lambda m: -len(m[0])):
                if path != "/tmp" and (value == path or value.startswith(path + "/")):
                    value = str(local) + value[len(path) :]
            env[name] = value
        image_env = {
            "PATH": f"{VENV_BIN}:/usr/bin:/bin",
            "HOME": str(pod.root / "tmp"),
            "TMPDIR": str(pod.root / "tmp"),
            "LANG": "C.UTF-8",
            "PYTHONUNBUFFERED": "1",
            "YTMAKER_TOPIC_PREFIX": self.topic_prefix,
        }
        assert set(image_env) == SHIM_ENV and not SHIM_ENV & set(env), (
            "the manifests set what the shim sets"
        )
        if self.images:  # the image brings its own PATH, HOME and /tmp
            image_env = {"YTMAKER_TOPIC_PREFIX": self.topic_prefix}
        return image_env | env

    # -- running -------------------------------------------------------------------------------

    def start(self) -> None:
        self._make_volumes()
        for pod in self.pods.values():
            pod.log = pod.log_path.open("ab")
            if self.images:
                argv, env, cwd = self._in_image(pod), None, pod.root
            else:
                executable = shutil.which(pod.command[0], path=pod.env["PATH"])
                assert executable, f"{pod.name}: {pod.command[0]} is not installed"
                argv, env, cwd = [executable, *pod.command[1:]], pod.env, pod.root / "tmp"
            pod.process = subprocess.Popen(
                argv,
                env=env,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=pod.log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # stop() signals the pod's own process group
            )

    def _buildah(self, *args: str) -> str:
        done = subprocess.run(
            ["buildah", "--storage-driver", self.storage_driver, *args],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, f"buildah {' '.join(args[:2])}: {done.stderr[-500:]}"
        return done.stdout.strip()

    def _in_image(self, pod: Pod) -> list[str]:
        """`buildah run` of the pod's command in a working container of its image."""
        pod.container = self._buildah("from", "--pull=never", f"localhost/{pod.image}")
        uid, gid = (int(x) for x in pod.user.split(":"))
        for directory in pod.mounts.values():
            directory.mkdir(parents=True, exist_ok=True)
            os.chown(directory, uid, gid)
        return [
            "buildah",
            "--storage-driver",
            self.storage_driver,
            "run",
            "--isolation",
            "chroot",
            "--network",
            "host",
            "--user",
            pod.user,
            *(f"--env={k}={v}" for k, v in pod.env.items()),
            *(f"--volume={d}:{path}" for path, d in pod.mounts.items()),
            pod.container,
            "--",
            *pod.command,
        ]

    def _make_volumes(self) -> None:
        """Each pod's TMPDIR, its Secret volumes' files and the emptyDirs its environment
        points into."""
        for pod in self.pods.values():
            (pod.root / "tmp").mkdir(parents=True, exist_ok=True)
            for path, content in pod.files.items():
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(content)
            for value in pod.env.values():
                if value.startswith(str(pod.root)) and Path(value) not in pod.files:
                    Path(value).mkdir(parents=True, exist_ok=True)

    def check_alive(self) -> None:
        dead = {
            name: pod.process.returncode
            for name, pod in self.pods.items()
            if pod.process is not None and pod.process.poll() is not None
        }
        assert not dead, f"pods exited: {dead}\n{self.log_tails()}"

    def wait_ready(self, timeout: float) -> dict[str, float]:
        """Poll every readiness probe until each answers 200; returns seconds to ready."""
        started = time.monotonic()
        ready: dict[str, float] = {}
        with httpx.Client(timeout=3) as http:
            while len(ready) < len(self.pods):
                self.check_alive()
                for name, pod in self.pods.items():
                    if name in ready:
                        continue
                    try:
                        if http.get(pod.readiness).status_code == 200:
                            assert http.get(pod.liveness).status_code == 200
                            ready[name] = time.monotonic() - started
                    except httpx.HTTPError:
                        pass
                if time.monotonic() - started > timeout:
                    waiting = sorted(set(self.pods) - set(ready))
                    raise AssertionError(
                        f"not ready after {timeout}s: {waiting}\n{self.log_tails()}"
                    )
                time.sleep(0.25)
        return ready

    def stop(self) -> dict[str, tuple[int | None, float]]:
        """SIGTERM every pod; SIGKILL after its termination grace. {pod: (exit code, seconds)};
        the exit code is None for a pod that had to be killed."""
        started = time.monotonic()
        for pod in self.pods.values():
            if pod.process is not None and pod.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    if self.images:  # the container's own process, as a runtime signals PID 1
                        os.kill(_innermost(pod.process.pid), signal.SIGTERM)
                    else:
                        os.killpg(pod.process.pid, signal.SIGTERM)
        result: dict[str, tuple[int | None, float]] = {}
        for name, pod in self.pods.items():
            if pod.process is None:
                continue
            try:
                code: int | None = pod.process.wait(
                    max(0.1, pod.grace_s - (time.monotonic() - started))
                )
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pod.process.pid, signal.SIGKILL)
                pod.process.wait()
                code = None
            result[name] = (code, time.monotonic() - started)
            if pod.log is not None:
                pod.log.close()
        for pod in self.pods.values():  # after the clock: removing a vfs container takes seconds
            if pod.container is not None:
                self._buildah("rm", pod.container)
                pod.container = None
        return result

    def log_tails(self, lines: int = 30) -> str:
        out = []
        for name, pod in self.pods.items():
            if pod.log_path.exists():
                tail = pod.log_path.read_text(errors="replace").splitlines()[-lines:]
                out.append(f"--- {name} ---\n" + "\n".join(tail))
        return "\n".join(out)


def _innermost(pid: int) -> int:
    """The last descendant of `pid` (`buildah run` -> chroot runtime -> exec -> the command)."""
    while True:
        children = [
            int(child)
            for task in Path(f"/proc/{pid}/task").glob("*")
            for child in (task / "children").read_text().split()
        ]
        if not children:
            return pid
        pid = children[-1]
