"""What a schema cannot see: the manifests agree with the code and with themselves. Selectors
pick the pods they mean; probes and Services reach the ports the services listen on; every
variable a service reads that has no cluster-worthy default is set, and nothing is set that no
service reads; the settings validate; the topics are the topics module's; every image is pinned;
every container is hardened."""

from __future__ import annotations

import os
import re

import pytest
import yaml
from pydantic import ValidationError

from ytmaker_dev.layout import PROCESSES
from ytmaker_progress.main import PARTS as PROGRESS_PARTS
from ytmaker_shared.kafka.users import KAFKA_USERS
from ytmaker_shared.settings import ServiceSettings
from ytmaker_shared.stages import STAGE_SERVICE
from ytmaker_shared.topics import CONSUMED_BY, STAGE_TOPIC, TOPIC_SPECS

from .catalog import (
    LIBRARY_ENV,
    SETTINGS,
    STAGES,
    env_names,
    stage_wiring,
)
from .manifests import (
    OVERLAYS,
    ROOT,
    EnvVar,
    Obj,
    all_containers,
    container_env,
    containers,
    matches,
    named,
    of_kind,
    ours,
    pod_labels,
    pod_spec,
    port_number,
    render,
)

#: Where a default is only good on one machine: a loopback address, a relative path, SQLite.
LOCAL_DEFAULT = re.compile(r"^(127\.|localhost|\./|sqlite:|var/)")
#: Settings that another one makes irrelevant when that one is set...
SUPERSEDED = {"artifact_dir": "artifact_url"}
#: ...or when the command runs without the part that reads them (`ytmaker-progress fold`).
READ_SIDE = {"progress_http_host", "progress_http_port", "progress_database_url"}
#: Which port setting each image listens on, by the probe's port.
LISTENS = {"gateway": "YTMAKER_PORT"}
TEST_SECRET = "test-value-0123456789abcdef0123456789"


def image_of(deployment: Obj) -> str:
    return str(containers(deployment)[0]["image"]).split("/", 1)[1].split(":", 1)[0]


def literal_env(objects: list[Obj], container: Obj) -> dict[str, str]:
    """The environment with every Secret as a test value and the pod name for fieldRefs."""
    env: dict[str, str] = {}
    for name, var in container_env(objects, container).items():
        if var.value is not None:
            env[name] = var.value
        elif var.field is not None:
            env[name] = "pod-0"
        elif var.secret is not None and not var.optional:
            env[name] = TEST_SECRET
    return env


#: Our Deployments: the processes of ytmaker_dev.layout (test_the_deployments_are_the_layout).
DEPLOYMENTS = (
    "gateway",
    "progress-fold",
    "progress",
    "script",
    "assets",
    "render",
    "upload",
)
ALL = [pytest.param(ov, name, id=f"{ov}-{name}") for ov in OVERLAYS for name in DEPLOYMENTS]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_deployments_are_the_layout(overlay: str) -> None:
    """The processes `make run` and the end-to-end tests start (ytmaker_dev.layout) are the
    Deployments, with the same image (service) and arguments."""
    deployed = {
        d["metadata"]["name"]: (image_of(d), containers(d)[0]["command"][1:])
        for d in ours(render(overlay))
    }
    assert deployed == {p.name: (p.service, list(p.arguments)) for p in PROCESSES}
    assert sorted(deployed) == sorted(DEPLOYMENTS)
    for deployment in ours(render(overlay)):
        command = containers(deployment)[0]["command"][0]
        assert command == f"ytmaker-{image_of(deployment)}", "the entry point the image installs"


def runs_read_side(container: Obj) -> bool:
    """Whether `ytmaker-progress <command>` runs the read side (its API, database)."""
    arguments = container["command"][1:] or ["serve"]
    parts = {"progress_run_api": True} | PROGRESS_PARTS[arguments[0]]
    return bool(parts["progress_run_api"])


# -- selectors ----------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_selectors_pick_the_pods_they_mean(overlay: str) -> None:
    objects = render(overlay)
    workloads = of_kind(objects, "Deployment")
    for d in workloads:
        selector = d["spec"]["selector"]
        assert matches(selector, pod_labels(d)), (
            f"{d['metadata']['name']}: selector misses its pods"
        )
        others = [w for w in workloads if w is not d and matches(selector, pod_labels(w))]
        assert not others, (
            f"{d['metadata']['name']}'s selector also picks {others[0]['metadata']['name']}"
        )
    for service in of_kind(objects, "Service"):
        picked = [w for w in workloads if matches(service["spec"]["selector"], pod_labels(w))]
        assert len(picked) == 1, (
            f"Service {service['metadata']['name']} selects {len(picked)} Deployments"
        )
        for port in service["spec"]["ports"]:
            port_number(containers(picked[0])[0], port["targetPort"])  # the name exists
    for pdb in of_kind(objects, "PodDisruptionBudget"):
        picked = [w for w in workloads if matches(pdb["spec"]["selector"], pod_labels(w))]
        assert len(picked) == 1, f"PDB {pdb['metadata']['name']} selects {len(picked)}"
        assert pdb["metadata"]["name"] == picked[0]["metadata"]["name"]
    names = {w["metadata"]["name"] for w in workloads}
    for hpa in of_kind(objects, "HorizontalPodAutoscaler"):
        assert hpa["spec"]["scaleTargetRef"]["name"] in names
    for scaled in of_kind(objects, "ScaledObject"):
        assert scaled["spec"]["scaleTargetRef"]["name"] in names
    for policy in of_kind(objects, "NetworkPolicy"):
        selector = policy["spec"]["podSelector"]
        operator_pods = {"cnpg.io/cluster"} & set(selector.get("matchLabels", {}))
        assert operator_pods or any(matches(selector, pod_labels(w)) for w in workloads), (
            f"NetworkPolicy {policy['metadata']['name']} selects no pod"
        )


def test_the_ingress_reaches_the_gateway_with_websocket_timeouts() -> None:
    objects = render("prod")
    ingress = named(objects, "Ingress", "gateway")
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    service = named(objects, "Service", backend["name"])
    assert backend["port"]["name"] in {p["name"] for p in service["spec"]["ports"]}
    annotations = ingress["metadata"]["annotations"]
    heartbeat = SETTINGS["gateway"].model_fields["heartbeat_interval_s"].default
    for timeout in ("proxy-read-timeout", "proxy-send-timeout"):
        assert int(annotations[f"nginx.ingress.kubernetes.io/{timeout}"]) >= 60 * heartbeat
    assert ingress["spec"]["tls"], "prod serves the gateway over TLS"
    host = ingress["spec"]["rules"][0]["host"]
    assert host in ingress["spec"]["tls"][0]["hosts"]
    gateway = container_env(objects, containers(named(objects, "Deployment", "gateway"))[0])
    assert gateway["YTMAKER_PUBLIC_URL"].value == f"https://{host}", "ws_url must be the public one"


def test_only_the_gateway_takes_traffic_from_outside() -> None:
    objects = render("prod")
    deny = named(objects, "NetworkPolicy", "ytmaker-default-deny")
    assert (
        set(deny["spec"]["policyTypes"]) == {"Ingress", "Egress"} and "ingress" not in deny["spec"]
    )
    for workload in ours(objects):
        assert matches(deny["spec"]["podSelector"], pod_labels(workload))
    for policy in of_kind(objects, "NetworkPolicy"):
        for rule in policy["spec"].get("ingress", []):
            for peer in rule.get("from", []):
                namespace = peer.get("namespaceSelector", {}).get("matchLabels", {})
                outside = namespace.get("kubernetes.io/metadata.name")
                if outside in (None, "monitoring", "cnpg-system"):
                    continue
                assert outside == "ingress-nginx"
                picked = [
                    w
                    for w in ours(objects)
                    if matches(policy["spec"]["podSelector"], pod_labels(w))
                ]
                assert [w["metadata"]["name"] for w in picked] == ["gateway"]


# -- ports, probes, environment --------------------------------------------------------------


@pytest.mark.parametrize(("overlay", "name"), ALL)
def test_probes_reach_what_the_service_listens_on(overlay: str, name: str) -> None:
    objects = render(overlay)
    deployment = named(objects, "Deployment", name)
    container = containers(deployment)[0]
    env = literal_env(objects, container)
    image = image_of(deployment)
    for kind in ("livenessProbe", "readinessProbe"):
        probe = container[kind]["httpGet"]
        assert probe["path"] == {"livenessProbe": "/healthz", "readinessProbe": "/readyz"}[kind]
        port = port_number(container, probe["port"])
        if image == "gateway":
            listens = int(env["YTMAKER_PORT"])
            assert env["YTMAKER_HOST"] == "0.0.0.0"
        elif probe["port"] == "http":  # the progress read side's internal API
            listens = int(env["YTMAKER_PROGRESS_HTTP_PORT"])
            assert env["YTMAKER_PROGRESS_HTTP_HOST"] == "0.0.0.0"
        else:
            listens = int(env["YTMAKER_HEALTH_PORT"])
            assert env["YTMAKER_HEALTH_HOST"] == "0.0.0.0"
        assert port == listens, f"{kind} on {port}, the service listens on {listens}"


@pytest.mark.parametrize(("overlay", "name"), ALL)
def test_every_variable_is_read_and_every_needed_one_is_set(overlay: str, name: str) -> None:
    objects = render(overlay)
    deployment = named(objects, "Deployment", name)
    cls = SETTINGS[image_of(deployment)]
    reads = env_names(cls)
    env = container_env(objects, containers(deployment)[0])
    unknown = set(env) - set(reads) - LIBRARY_ENV
    assert not unknown, f"set but read by nobody (a typo?): {sorted(unknown)}"
    fields_set = {reads[name] for name in env if name in reads}
    missing = []
    for name, field in reads.items():
        info = cls.model_fields[field]
        default = info.get_default(call_default_factory=False)
        local_only = default is not None and bool(LOCAL_DEFAULT.match(str(default)))
        superseded = SUPERSEDED.get(field) in fields_set or (
            field in READ_SIDE and not runs_read_side(containers(deployment)[0])
        )
        if (
            local_only
            and field not in fields_set
            and not superseded
            and name.startswith("YTMAKER_")
        ):
            missing.append(name)
    # Kafka is named by KAFKA_BOOTSTRAP_SERVERS (its first alias).
    assert "KAFKA_BOOTSTRAP_SERVERS" in env
    assert not missing, f"defaults that only work on one machine, not overridden: {missing}"
    if "artifact_url" in cls.model_fields:
        assert env["YTMAKER_ARTIFACT_URL"].value and env["YTMAKER_ARTIFACT_URL"].value.startswith(
            "s3://"
        )


@pytest.mark.parametrize(("overlay", "name"), ALL)
def test_the_settings_validate(overlay: str, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    objects = render(overlay)
    deployment = named(objects, "Deployment", name)
    for variable in list(os.environ):
        if variable.startswith(("YTMAKER_", "KAFKA_")):
            monkeypatch.delenv(variable)
    for variable, value in literal_env(objects, containers(deployment)[0]).items():
        monkeypatch.setenv(variable, value)
    try:
        settings = SETTINGS[image_of(deployment)]()
    except ValidationError as exc:
        pytest.fail(f"{deployment['metadata']['name']}: {exc}")
    assert isinstance(settings, ServiceSettings)
    assert settings.instance == "pod-0"


def test_secrets_carry_the_gateway_and_internal_credentials() -> None:
    for overlay in OVERLAYS:
        objects = render(overlay)
        gateway = container_env(objects, containers(named(objects, "Deployment", "gateway"))[0])
        api = container_env(objects, containers(named(objects, "Deployment", "progress"))[0])
        for env, name in (
            (gateway, "YTMAKER_JWT_SECRET"),
            (gateway, "YTMAKER_INTERNAL_TOKEN"),
            (api, "YTMAKER_INTERNAL_TOKEN"),
        ):
            var: EnvVar = env[name]
            assert var.secret is not None and not var.optional, f"{name} must come from a Secret"
        assert (
            gateway["YTMAKER_INTERNAL_TOKEN"].secret[0] == api["YTMAKER_INTERNAL_TOKEN"].secret[0]
        )  # type: ignore[index]
        for workload, container in all_containers(objects):
            for var in container_env(objects, container).values():
                secretish = re.search(r"(SECRET|TOKEN|PASSWORD|API_KEY)$", var.name)
                if secretish and workload["kind"] != "Job":
                    assert var.value is None, f"{var.name} is a literal, not a Secret reference"


# -- topics and scaling ----------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_topics_are_the_topics_module(overlay: str) -> None:
    objects = render(overlay)
    config = named(objects, "ConfigMap", "ytmaker-config")["data"]
    topics = {t["spec"]["topicName"]: t["spec"] for t in of_kind(objects, "KafkaTopic")}
    assert set(topics) == {s.topic.value for s in TOPIC_SPECS}
    replicas = int(config["YTMAKER_TOPIC_REPLICATION_FACTOR"])
    for spec in TOPIC_SPECS:
        topic = topics[spec.topic.value]
        assert {k: str(v) for k, v in topic["config"].items()} == spec.config()
        assert topic["partitions"] == int(config["YTMAKER_TOPIC_PARTITIONS"])
        assert topic["replicas"] == replicas
    kafka = named(objects, "Kafka", "ytmaker")["spec"]["kafka"]["config"]
    pool = named(objects, "KafkaNodePool", "dual")["spec"]
    assert kafka["auto.create.topics.enable"] is False
    assert kafka["default.replication.factor"] == replicas <= pool["replicas"]
    assert kafka["transaction.state.log.replication.factor"] == replicas  # the fold's transactions
    assert config["KAFKA_BOOTSTRAP_SERVERS"] == "ytmaker-kafka-bootstrap:9092"  # Strimzi's Service


@pytest.mark.parametrize("name", ["topics.yaml", "users.yaml"])
def test_kafka_files_are_generated_from_the_code(name: str) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("k8s_kafka", ROOT / "scripts/k8s_kafka.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert (module.KAFKA_DIR / name).read_text(encoding="utf-8") == module.render(name), (
        f"deploy/k8s/base/kafka/{name} is stale: run `.venv/bin/python scripts/k8s_kafka.py`"
    )


def test_each_stage_scales_on_its_own_consumer_group() -> None:
    objects = render("prod")
    partitions = int(
        named(objects, "ConfigMap", "ytmaker-config")["data"]["YTMAKER_TOPIC_PARTITIONS"]
    )
    scaled = {
        s["spec"]["scaleTargetRef"]["name"]: s["spec"] for s in of_kind(objects, "ScaledObject")
    }
    assert set(scaled) == set(STAGES)
    for stage in STAGES:
        wiring = stage_wiring(stage)
        (trigger,) = scaled[stage]["triggers"]
        assert trigger["type"] == "kafka"
        meta = trigger["metadata"]
        assert meta["consumerGroup"] == wiring.group
        assert meta["topic"] in wiring.topics
        assert meta["bootstrapServers"] == "ytmaker-kafka-bootstrap:9092"
        assert (
            1 <= scaled[stage]["minReplicaCount"] <= scaled[stage]["maxReplicaCount"] <= partitions
        )


def test_prod_spreads_and_protects_every_part() -> None:
    objects = render("prod")
    budgets = {p["metadata"]["name"] for p in of_kind(objects, "PodDisruptionBudget")}
    for deployment in ours(objects):
        name = deployment["metadata"]["name"]
        assert name in budgets, f"{name} has no PodDisruptionBudget"
        terms = pod_spec(deployment)["affinity"]["podAntiAffinity"][
            "preferredDuringSchedulingIgnoredDuringExecution"
        ]
        assert matches(terms[0]["podAffinityTerm"]["labelSelector"], pod_labels(deployment))
    (hpa,) = of_kind(objects, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "gateway"
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    assert named(objects, "Cluster", "ytmaker-db")["spec"]["instances"] == 3
    for overlay, replicas in (("dev", 1), ("prod", None)):
        for deployment in ours(render(overlay)):
            if replicas is not None:
                assert deployment["spec"]["replicas"] == replicas


# -- images and hardening --------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_image_is_pinned(overlay: str) -> None:
    objects = render(overlay)
    version = re.search(r'^version = "(.+)"', (ROOT / "pyproject.toml").read_text(), re.M)
    assert version is not None
    for _workload, container in all_containers(objects):
        image = container["image"]
        name, _, tag = image.rpartition(":")
        assert name and tag and tag != "latest" and "/" not in tag, f"{image} is not pinned"
        if image.startswith("ytmaker/"):
            assert tag == version.group(1), f"{image}: our images carry the project's version"
    assert re.fullmatch(
        r"\d+\.\d+\.\d+", str(named(objects, "Kafka", "ytmaker")["spec"]["kafka"]["version"])
    )
    assert ":" in named(objects, "Cluster", "ytmaker-db")["spec"]["imageName"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_is_hardened(overlay: str) -> None:
    objects = render(overlay)
    stage_grace = 5 + 1 + ServiceSettings.model_fields["producer_delivery_timeout_s"].default
    for workload, container in all_containers(objects):
        where = f"{workload['kind']}/{workload['metadata']['name']}"
        pod = pod_spec(workload)
        assert pod["securityContext"]["runAsNonRoot"] is True, where
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", where
        assert pod.get("automountServiceAccountToken") is False, where
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True, where
        assert security["allowPrivilegeEscalation"] is False, where
        assert security["capabilities"]["drop"] == ["ALL"], where
        assert {"cpu", "memory"} <= set(container["resources"]["requests"]), where
        assert "memory" in container["resources"]["limits"], where
        mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
        assert "/tmp" in mounts, f"{where}: a read-only root needs a writable /tmp"
        if workload["kind"] == "Deployment":
            assert "livenessProbe" in container and "readinessProbe" in container, where
    for deployment in ours(objects):
        grace = pod_spec(deployment)["terminationGracePeriodSeconds"]
        if image_of(deployment) in STAGES or deployment["metadata"]["name"] == "progress-fold":
            assert grace > stage_grace, f"{deployment['metadata']['name']}: {grace}s"


def test_every_crd_schema_names_its_source() -> None:
    sources = (ROOT / "deploy/k8s/schemas/SOURCES.md").read_text()
    schemas = sorted((ROOT / "deploy/k8s/schemas").rglob("*.json"))
    assert len(schemas) == 7
    for schema in schemas:
        relative = schema.relative_to(ROOT / "deploy/k8s/schemas").as_posix()
        row = next((line for line in sources.splitlines() if f"`{relative}`" in line), None)
        assert row is not None and re.search(r"[0-9a-f]{40}|same tag", row), relative
        assert re.search(r"\b[0-9a-f]{64}\b", row), f"{relative}: no sha256 of its source"


def named_volume(workload: Obj, name: str) -> Obj:
    (volume,) = [v for v in pod_spec(workload)["volumes"] if v["name"] == name]
    return volume


def _acls(objects: list[Obj], user: str) -> set[tuple[str, str, str, str]]:
    """(resource type, name, pattern, operation) of every ACL of KafkaUser `user`."""
    spec = named(objects, "KafkaUser", user)["spec"]
    assert spec["authentication"] == {"type": "scram-sha-512"}
    return {
        (a["resource"]["type"], a["resource"]["name"], a["resource"]["patternType"], operation)
        for a in spec["authorization"]["acls"]
        for operation in a["operations"]
    }


def _reads(acls: set[tuple[str, str, str, str]], topic: str) -> bool:
    return {("topic", topic, "literal", op) for op in ("Read", "Describe")} <= acls


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_part_signs_in_as_a_kafka_user_of_its_own(overlay: str) -> None:
    """The listener wants SCRAM users and enforces ACLs (decision 0122); every Deployment and
    the audit Job name their own user and read its password from the Secret Strimzi makes."""
    objects = render(overlay)
    kafka = named(objects, "Kafka", "ytmaker")["spec"]
    (listener,) = kafka["kafka"]["listeners"]
    assert listener["authentication"] == {"type": "scram-sha-512"} and listener["tls"] is True
    assert kafka["kafka"]["authorization"] == {"type": "simple"}
    assert "userOperator" in kafka["entityOperator"]
    config = named(objects, "ConfigMap", "ytmaker-config")["data"]
    assert config["YTMAKER_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    ca_secret = f"{named(objects, 'Kafka', 'ytmaker')['metadata']['name']}-cluster-ca-cert"
    users = {u["metadata"]["name"] for u in of_kind(objects, "KafkaUser")}
    job = yaml.safe_load((ROOT / "deploy/k8s/jobs/rebuild-read-model.yaml").read_text())
    signed_in = {}
    for workload in [*ours(objects), job]:
        env = container_env(objects, containers(workload)[0])
        user = env["YTMAKER_KAFKA_USERNAME"].value
        assert user in users, f"{workload['metadata']}: no KafkaUser {user}"
        assert env["YTMAKER_KAFKA_PASSWORD"].secret == (user, "password")
        assert not env["YTMAKER_KAFKA_PASSWORD"].optional
        # the brokers' authority, where the settings look for it
        (mount,) = [
            m
            for m in containers(workload)[0]["volumeMounts"]
            if config["YTMAKER_KAFKA_CA_FILE"].startswith(m["mountPath"] + "/")
        ]
        volume = named_volume(workload, mount["name"])
        assert volume["secret"]["secretName"] == ca_secret and mount.get("readOnly") is True
        items = {i["path"]: i["key"] for i in volume["secret"]["items"]}
        assert items[config["YTMAKER_KAFKA_CA_FILE"].removeprefix(mount["mountPath"] + "/")] == (
            "ca.crt"
        )
        signed_in[workload["metadata"].get("name", "audit")] = user
    assert len(set(signed_in.values())) == len(signed_in), signed_in  # nobody shares one


def test_each_user_reads_and_writes_what_its_code_does() -> None:
    """The stages' groups and input topics as their main.py wires them, each stage's own
    topic, and every consumer of `topics.CONSUMED_BY` can read what it consumes."""
    objects = render("prod")
    for stage in STAGES:
        acls = _acls(objects, f"kafka-{stage}")
        wiring = stage_wiring(stage)
        assert {("group", wiring.group, "literal", "Read")} <= acls
        assert all(_reads(acls, topic) for topic in (*wiring.topics, "pipeline.control"))
        for produced in {t.value for s, t in STAGE_TOPIC.items() if STAGE_SERVICE[s] == stage}:
            assert ("topic", produced, "literal", "Write") in acls
        assert ("topic", "pipeline.dlq", "literal", "Write") in acls  # its dead letters
    users_of = {
        "progress": ("kafka-progress-fold", "kafka-progress"),
        "gateway": ("kafka-gateway",),
    }
    for topic, consumers in CONSUMED_BY.items():
        for service in consumers:
            readers = users_of.get(service, (f"kafka-{service}",))
            assert any(_reads(_acls(objects, user), topic.value) for user in readers), topic
    fold = _acls(objects, "kafka-progress-fold")
    assert ("transactionalId", "progress-fold", "prefix", "Write") in fold
    assert {("topic", "progress.updates", "literal", "Write")} <= fold
    nobody_else = [u for u in KAFKA_USERS if u not in ("kafka-progress-fold", "kafka-operator")]
    for user in nobody_else:  # only the fold writes the updates every client trusts
        assert ("topic", "progress.updates", "literal", "Write") not in _acls(objects, user)


def test_the_autoscaler_signs_in_and_may_only_describe() -> None:
    """KEDA's operator (namespace `keda`, label `app: keda-operator`, as its chart installs
    it) reaches the listener, signs in as a user that may only describe, over TLS."""
    objects = render("prod")
    (listener,) = named(objects, "Kafka", "ytmaker")["spec"]["kafka"]["listeners"]
    keda = {"kubernetes.io/metadata.name": "keda"}, {"app": "keda-operator"}
    assert any(
        matches(peer.get("namespaceSelector", {}), keda[0])
        and matches(peer.get("podSelector", {}), keda[1])
        and "namespaceSelector" in peer
        for peer in listener["networkPolicyPeers"]
    ), "KEDA's operator cannot reach the Kafka listener"
    auth = named(objects, "TriggerAuthentication", "kafka-autoscaler")["spec"]
    (username,) = auth["configMapTargetRef"]
    from_secrets = {ref["parameter"]: ref for ref in auth["secretTargetRef"]}
    user = named(objects, "ConfigMap", username["name"])["data"][username["key"]]
    assert from_secrets["password"] == {"parameter": "password", "name": user, "key": "password"}
    assert from_secrets["ca"] == {
        "parameter": "ca",
        "name": "ytmaker-cluster-ca-cert",
        "key": "ca.crt",
    }
    acls = _acls(objects, user)
    assert {op for *_, op in acls} == {"Describe"}
    for scaled in of_kind(objects, "ScaledObject"):
        (trigger,) = scaled["spec"]["triggers"]
        assert trigger["authenticationRef"] == {"name": "kafka-autoscaler"}
        assert trigger["metadata"]["sasl"] == "scram_sha512"
        assert trigger["metadata"]["tls"] == "enable"
        meta = trigger["metadata"]
        assert {("topic", meta["topic"]), ("group", meta["consumerGroup"])} <= {
            (kind, name) for kind, name, *_ in acls
        }
