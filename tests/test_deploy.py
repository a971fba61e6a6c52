"""deploy/: every file parses, every path it references exists, and the pieces agree with each other.

Nothing here starts Docker, Kubernetes, Grafana, an OpenTelemetry Collector or a ClickHouse server (none
can run on the machines this was written on): these tests validate the files. The collector configs are
checked by the collector's own loader, so a key it does not know fails here.
"""

from __future__ import annotations

import re
import string
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tokenbook.collector.config import load_config
from tokenbook.genai.yamlfiles import load_yaml, load_yaml_all

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "docker-compose.yml"
CLUSTER_COMPOSE = DEPLOY / "clickhouse-cluster" / "docker-compose.yml"
K8S = DEPLOY / "k8s"
GATEWAY = DEPLOY / "otel-gateway.yaml"

YAML_FILES = sorted(p for p in DEPLOY.rglob("*") if p.suffix in (".yaml", ".yml"))
XML_FILES = sorted(DEPLOY.rglob("*.xml"))
ALL_FILES = sorted(p for p in DEPLOY.rglob("*") if p.is_file())


def _rel(p: Path) -> str:
    return str(p.relative_to(ROOT))


def _docs(path: Path) -> list[Any]:
    return [d for d in load_yaml_all(path.read_text(encoding="utf-8")) if d is not None]


def _k8s_objects() -> list[dict[str, Any]]:
    return [d for p in sorted(K8S.glob("*.yaml")) for d in _docs(p)]


def _k8s(kind: str, name: str) -> dict[str, Any]:
    found = [o for o in _k8s_objects() if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def _port(endpoint: str) -> int:
    return int(endpoint.rpartition(":")[2])


# --- every file parses ------------------------------------------------------------------------------


def test_deploy_has_the_expected_files() -> None:
    for rel in (
        "docker-compose.yml",
        "collector.yaml",
        "Dockerfile",
        "otel-gateway.yaml",
        "grafana/provisioning/datasources/clickhouse.yaml",
        "grafana/provisioning/dashboards/tokenbook.yaml",
        "k8s/collector.yaml",
        "k8s/migrate-job.yaml",
        "clickhouse-cluster/docker-compose.yml",
    ):
        assert (DEPLOY / rel).is_file(), rel


@pytest.mark.parametrize("path", YAML_FILES, ids=_rel)
def test_yaml_parses_every_document(path: Path) -> None:
    docs = _docs(path)
    assert docs, f"{_rel(path)} is empty"
    assert all(isinstance(d, dict) for d in docs)


@pytest.mark.parametrize("path", XML_FILES, ids=_rel)
def test_clickhouse_xml_parses(path: Path) -> None:
    root = ET.parse(path).getroot()
    assert root.tag == "clickhouse"


_PATH_IN_TEXT = re.compile(r"(?<![\w/.])((?:deploy|dashboards|docs|tests)/[\w./-]*[\w])")


@pytest.mark.parametrize("path", ALL_FILES, ids=_rel)
def test_repository_paths_mentioned_in_deploy_files_exist(path: Path) -> None:
    """Instructions in comments (`kubectl apply -f deploy/k8s/...`) name files that exist."""
    text = path.read_text(encoding="utf-8")
    missing = [m for m in _PATH_IN_TEXT.findall(text) if not (ROOT / m).exists()]
    assert not missing, f"{_rel(path)} mentions missing paths: {missing}"


# --- docker compose ---------------------------------------------------------------------------------


def _bind_mounts(compose: Path) -> list[tuple[str, Path, str]]:
    """(service, host path, container path) of every bind mount (a volume whose source is a path)."""
    spec = load_yaml(compose.read_text(encoding="utf-8"))
    out = []
    for name, svc in spec["services"].items():
        for vol in svc.get("volumes", []):
            src, dst = vol.split(":")[:2]
            if src.startswith((".", "/")):
                out.append((name, (compose.parent / src).resolve(), dst))
    return out


@pytest.mark.parametrize("compose", [COMPOSE, CLUSTER_COMPOSE], ids=_rel)
def test_compose_references_exist(compose: Path) -> None:
    spec = load_yaml(compose.read_text(encoding="utf-8"))
    services = spec["services"]
    named_volumes = set(spec.get("volumes") or {})
    for name, svc in services.items():
        assert "image" in svc or "build" in svc, name
        build = svc.get("build")
        if build:
            context = (compose.parent / build["context"]).resolve()
            assert (context / "pyproject.toml").is_file(), f"{name}: build context is not the repository"
            assert (context / build["dockerfile"]).is_file(), f"{name}: dockerfile missing"
        for vol in svc.get("volumes", []):
            src = vol.split(":")[0]
            if not src.startswith((".", "/")):
                assert src in named_volumes, f"{name}: volume {src} is not declared"
        deps = svc.get("depends_on", [])
        for dep in deps if isinstance(deps, list) else deps.keys():
            assert dep in services, f"{name} depends on unknown service {dep}"
    for _service, host, _dst in _bind_mounts(compose):
        assert host.exists(), f"bind mount source missing: {host}"


def test_compose_collector_config_loads_and_matches_the_stack() -> None:
    spec = load_yaml(COMPOSE.read_text(encoding="utf-8"))
    services = spec["services"]
    collector = services["collector"]
    mounted = {dst: host for svc, host, dst in _bind_mounts(COMPOSE) if svc == "collector"}
    config_path = collector["command"][collector["command"].index("--config") + 1]
    cfg = load_config(mounted[config_path])
    assert cfg.clickhouse.url is not None
    url = urlsplit(cfg.clickhouse.url.reveal())
    assert url.hostname in services, "the storage URL names a compose service"
    published = {int(p.split(":")[1]) for p in collector["ports"]}
    assert {_port(cfg.grpc.endpoint), _port(cfg.http.endpoint), _port(cfg.admin.endpoint)} == published
    assert cfg.grpc.endpoint.startswith("0.0.0.0:"), "inside a container OTLP must listen on all interfaces"
    # The spool lives on a named volume, so acknowledged spans survive a container restart.
    wal_mounts = [v.split(":") for v in collector["volumes"] if not v.startswith((".", "/"))]
    assert [str(cfg.spool.dir)] == [dst for _src, dst in wal_mounts]
    assert services["clickhouse"]["environment"]["CLICKHOUSE_USER"] == url.username
    health = " ".join(collector["healthcheck"]["test"])
    assert f":{_port(cfg.admin.endpoint)}/readyz" in health


def _container_to_host(compose: Path, service: str, container_path: str) -> Path:
    for svc, host, dst in _bind_mounts(compose):
        if svc == service and (container_path == dst or container_path.startswith(dst.rstrip("/") + "/")):
            return host / container_path[len(dst) :].lstrip("/")
    raise AssertionError(f"{container_path} is not inside a bind mount of {service}")


def test_grafana_provisioning_points_at_the_plugin_and_the_dashboards() -> None:
    spec = load_yaml(COMPOSE.read_text(encoding="utf-8"))
    grafana = spec["services"]["grafana"]
    env = grafana["environment"]
    assert "grafana-clickhouse-datasource" in env["GF_PLUGINS_PREINSTALL"]
    home = _container_to_host(COMPOSE, "grafana", env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"])
    assert home.is_file()

    ds_dir = _container_to_host(COMPOSE, "grafana", "/etc/grafana/provisioning/datasources")
    (ds,) = [d for p in sorted(ds_dir.glob("*.yaml")) for d in load_yaml(p.read_text())["datasources"]]
    assert ds["type"] == "grafana-clickhouse-datasource"
    assert ds["jsonData"]["host"] in spec["services"]
    assert ds["jsonData"]["defaultDatabase"] == "tokenbook"
    assert ds["jsonData"]["protocol"] in ("native", "http")

    dash_dir = _container_to_host(COMPOSE, "grafana", "/etc/grafana/provisioning/dashboards")
    (provider,) = [
        pr for p in sorted(dash_dir.glob("*.yaml")) for pr in load_yaml(p.read_text())["providers"]
    ]
    boards = _container_to_host(COMPOSE, "grafana", provider["options"]["path"])
    assert boards == (ROOT / "dashboards").resolve()
    assert sorted(boards.glob("*.json")), "no dashboards to provision"


# --- Kubernetes -------------------------------------------------------------------------------------


def test_k8s_objects_are_well_formed() -> None:
    objects = _k8s_objects()
    kinds = {o["kind"] for o in objects}
    assert {"ConfigMap", "Deployment", "Service", "Job"} <= kinds
    for o in objects:
        assert o["apiVersion"] and o["metadata"]["name"], o


def _collector_pod() -> dict[str, Any]:
    spec: dict[str, Any] = _k8s("Deployment", "tokenbook-collector")["spec"]["template"]["spec"]
    return spec


def _rendered_k8s_config(tmp_path: Path) -> Path:
    template = _k8s("ConfigMap", "tokenbook-collector")["data"]["collector.yaml"]
    out = tmp_path / "collector.yaml"
    out.write_text(string.Template(template).substitute(CLICKHOUSE_PASSWORD="secret"), encoding="utf-8")
    return out


def test_k8s_collector_config_loads_with_the_collectors_loader(tmp_path: Path) -> None:
    cfg = load_config(_rendered_k8s_config(tmp_path))
    assert cfg.clickhouse.url is not None
    assert urlsplit(cfg.clickhouse.url.reveal()).password == "secret"
    assert cfg.admin.endpoint.startswith("0.0.0.0:")


def test_k8s_probes_hit_the_admin_api(tmp_path: Path) -> None:
    cfg = load_config(_rendered_k8s_config(tmp_path))
    (container,) = _collector_pod()["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["admin"] == _port(cfg.admin.endpoint)
    assert ports["otlp-grpc"] == _port(cfg.grpc.endpoint)
    assert ports["otlp-http"] == _port(cfg.http.endpoint)
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "admin"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "admin"}
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"


def test_k8s_volumes_services_and_secrets_line_up() -> None:
    pod = _collector_pod()
    volumes = {v["name"]: v for v in pod["volumes"]}
    for c in pod["containers"] + pod["initContainers"]:
        for m in c.get("volumeMounts", []):
            assert m["name"] in volumes, m
    assert volumes["config-template"]["configMap"]["name"] == "tokenbook-collector"
    (container,) = pod["containers"]
    config_arg = container["args"][container["args"].index("--config") + 1]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert config_arg == f"{mounts['config']}/collector.yaml"
    labels = _k8s("Deployment", "tokenbook-collector")["spec"]["template"]["metadata"]["labels"]
    named_ports = {p["name"] for p in container["ports"]}
    for name in ("tokenbook-collector", "tokenbook-collector-headless"):
        svc = _k8s("Service", name)["spec"]
        assert svc["selector"].items() <= labels.items()
        assert {p["targetPort"] for p in svc["ports"]} <= named_ports
    assert _k8s("Service", "tokenbook-collector-headless")["spec"]["clusterIP"] == "None"


def test_k8s_migrate_job_applies_the_clustered_schema() -> None:
    (container,) = _k8s("Job", "tokenbook-migrate")["spec"]["template"]["spec"]["containers"]
    args = container["args"]
    assert args[0] == "migrate"
    cluster = args[args.index("--cluster") + 1]
    assert cluster == _cluster_name()
    url = args[args.index("--url") + 1]
    env = {e["name"] for e in container["env"]}
    assert all(var in env for var in re.findall(r"\$\((\w+)\)", url))


# --- OpenTelemetry gateway --------------------------------------------------------------------------


def test_gateway_routes_by_trace_id_to_the_collectors() -> None:
    cfg = load_yaml(GATEWAY.read_text(encoding="utf-8"))
    (name,) = [n for n in cfg["exporters"] if n.split("/")[0] in ("loadbalancing", "load_balancing")]
    lb = cfg["exporters"][name]
    assert lb["routing_key"] == "traceID"
    assert "otlp" in lb["protocol"]
    (resolver,) = lb["resolver"].items()
    kind, settings = resolver
    assert kind == "dns"
    headless = _k8s("Service", "tokenbook-collector-headless")
    assert settings["hostname"].split(".")[0] == headless["metadata"]["name"]
    assert settings["port"] in {p["port"] for p in headless["spec"]["ports"]}
    pipeline = cfg["service"]["pipelines"]["traces"]
    assert pipeline["exporters"] == [name]
    for section in ("receivers", "processors", "exporters"):
        assert set(pipeline[section]) <= set(cfg[section]), section
    assert set(cfg["service"].get("extensions", [])) <= set(cfg.get("extensions", {}))


def test_gateway_batches_fit_the_collectors_request_limit() -> None:
    """The batch processor's `send_batch_size` only triggers a send; without `send_batch_max_size`
    a large request from an application passes on as one batch, and one above the collector's
    `max_request_bytes` is refused for good (the gateway does not retry a 413)."""
    batch = load_yaml(GATEWAY.read_text(encoding="utf-8"))["processors"]["batch"]
    most = batch["send_batch_max_size"]
    assert batch["send_batch_size"] <= most
    limit = load_config(None).receivers.otlp.protocols.grpc.max_request_bytes
    assert most * 8 * 1024 <= limit  # spans of up to 8 KiB each


def test_gateway_deployment_mounts_its_config() -> None:
    pod = _k8s("Deployment", "otel-gateway")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"].startswith("otel/opentelemetry-collector-contrib:")
    (arg,) = [a for a in container["args"] if a.startswith("--config=")]
    (mount,) = container["volumeMounts"]
    assert arg == f"--config={mount['mountPath']}/config.yaml"
    health = load_yaml(GATEWAY.read_text(encoding="utf-8"))["extensions"]["health_check"]["endpoint"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["health"] == _port(health)


# --- clustered ClickHouse ---------------------------------------------------------------------------

CLUSTER_DIR = DEPLOY / "clickhouse-cluster"


def _cluster_name() -> str:
    servers = ET.parse(CLUSTER_DIR / "config.d" / "remote_servers.xml").getroot().find("remote_servers")
    assert servers is not None
    (cluster,) = list(servers)
    return cluster.tag


def test_cluster_is_two_shards_of_two_replicas_on_compose_hosts() -> None:
    services = load_yaml(CLUSTER_COMPOSE.read_text(encoding="utf-8"))["services"]
    root = ET.parse(CLUSTER_DIR / "config.d" / "remote_servers.xml").getroot()
    shards = root.findall(f"./remote_servers/{_cluster_name()}/shard")
    assert len(shards) == 2
    hosts = []
    for shard in shards:
        assert shard.findtext("internal_replication") == "true"
        replicas = shard.findall("replica")
        assert len(replicas) == 2
        hosts += [r.findtext("host") for r in replicas]
    assert len(set(hosts)) == 4 and set(hosts) <= set(services)
    # Each node's macros identify its own shard and replica.
    macros = ET.parse(CLUSTER_DIR / "config.d" / "macros.xml").getroot().find("macros")
    assert macros is not None
    env_of = {m.tag: m.get("from_env") for m in macros if m.get("from_env")}
    assert {"shard", "replica"} <= set(env_of)
    seen = set()
    for shard_no, shard in enumerate(shards, start=1):
        for r in shard.findall("replica"):
            env = services[r.findtext("host") or ""]["environment"]
            assert int(env[env_of["shard"]]) == shard_no
            seen.add(env[env_of["replica"]])
    assert len(seen) == 4, "replica names are unique"


def test_cluster_keeper_ensemble_matches_compose() -> None:
    services = load_yaml(CLUSTER_COMPOSE.read_text(encoding="utf-8"))["services"]
    keeper = ET.parse(CLUSTER_DIR / "keeper" / "keeper_config.xml").getroot().find("keeper_server")
    assert keeper is not None
    raft = {s.findtext("hostname"): int(s.findtext("id") or 0) for s in keeper.iter("server")}
    assert len(raft) == 3
    id_env = keeper.find("server_id")
    assert id_env is not None and id_env.get("from_env")
    for host, server_id in raft.items():
        assert int(services[host]["environment"][id_env.get("from_env")]) == server_id
    use = ET.parse(CLUSTER_DIR / "config.d" / "use_keeper.xml").getroot()
    clients = {(n.findtext("host"), n.findtext("port")) for n in use.iter("node")}
    assert clients == {(h, keeper.findtext("tcp_port")) for h in raft}


def test_cluster_migrate_uses_the_cluster_name() -> None:
    services = load_yaml(CLUSTER_COMPOSE.read_text(encoding="utf-8"))["services"]
    cmd = services["migrate"]["command"]
    assert cmd[cmd.index("--cluster") + 1] == _cluster_name()
    assert urlsplit(cmd[cmd.index("--url") + 1]).hostname in services


def test_clustered_schema_uses_only_macros_the_nodes_define() -> None:
    """The DDL `tokenbook migrate --cluster` renders names this cluster and only macros its nodes know."""
    from importlib import resources

    from tokenbook.collector.storage.sqltemplate import SchemaTarget, render

    cluster = _cluster_name()
    macros = ET.parse(CLUSTER_DIR / "config.d" / "macros.xml").getroot().find("macros")
    assert macros is not None
    defined = {m.tag for m in macros} | {"database", "table"}  # the last two are built into ClickHouse
    migrations = resources.files("tokenbook.collector.storage").joinpath("sql", "migrations")
    statements = [
        s
        for f in sorted(migrations.iterdir(), key=lambda f: f.name)
        if f.name.endswith(".sql")
        for s in render(f.read_text(encoding="utf-8"), SchemaTarget(cluster=cluster))
    ]
    assert statements
    for statement in statements:
        for name in re.findall(r"ON CLUSTER (\w+)|Distributed\((\w+),", statement):
            assert cluster in name
        for engine in re.findall(r"Replicated\w+\(([^)]*)\)", statement):
            assert set(re.findall(r"\{(\w+)\}", engine)) <= defined, engine


# --- the collector image and the commands it runs ---------------------------------------------------


def _tokenbook_commands() -> list[tuple[str, list[str]]]:
    """(where, argv) of every tokenbook invocation in compose files and Kubernetes manifests."""
    found = []
    for compose in (COMPOSE, CLUSTER_COMPOSE):
        for name, svc in load_yaml(compose.read_text(encoding="utf-8"))["services"].items():
            if svc.get("image", "").startswith("tokenbook"):
                found.append((f"{_rel(compose)}:{name}", list(svc["command"])))
    for o in _k8s_objects():
        if o["kind"] in ("Deployment", "Job"):
            for c in o["spec"]["template"]["spec"]["containers"]:
                if c["image"].startswith("tokenbook"):
                    found.append((f"k8s {o['kind']}/{o['metadata']['name']}", list(c["args"])))
    return found


def test_every_tokenbook_command_parses_with_the_real_cli() -> None:
    from tokenbook.cli import build_parser

    commands = _tokenbook_commands()
    assert {argv[0] for _, argv in commands} == {"collector", "migrate"}
    for where, argv in commands:
        try:
            build_parser().parse_args(argv)
        except SystemExit as exc:
            raise AssertionError(f"{where}: `tokenbook {' '.join(argv)}` does not parse") from exc


def test_dockerfile_installs_the_collector_extra_and_exposes_the_ports() -> None:
    import tomllib

    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert "collector" in project["optional-dependencies"]
    assert '".[collector]"' in text
    members = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["uv"]["workspace"]
    assert all(f"./{m}" in text for m in members["members"])  # every member is built, not looked up
    cli = tomllib.loads((ROOT / "cli" / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert 'ENTRYPOINT ["tokenbook"]' in text and "tokenbook" in cli["scripts"]
    (expose,) = re.findall(r"^EXPOSE (.+)$", text, re.MULTILINE)
    assert {int(p) for p in expose.split()} == {4317, 4318, 4319}
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text(encoding="utf-8").split()
    assert ".venv" in ignore and "tokenbook-data" in ignore
    assert "**/*.so" in ignore  # an extension built here for this machine stays out of the image
    build_stage = text.split("\nFROM ")[1]  # from the first FROM to the second
    assert "gcc" in build_stage  # the wheels are built with the collector's C extension


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("member", "extension"),
    [("collector", "tokenbook/collector/decode/_walk"), ("processor", "tokenbook/processor/_plain")],
)
def test_a_wheel_carries_its_c_extension(tmp_path: Path, member: str, extension: str) -> None:
    """Built as the image's build stage builds them (`pip wheel ./collector`, with a C compiler), the
    collector's and the processor's wheels are platform wheels holding their C extension and its stub:
    the decoder's envelope walk, the processor's plain-span path."""
    import shutil
    import subprocess
    import sys
    import zipfile

    source = tmp_path / member  # a copy: the build writes its build/ and egg-info beside it
    shutil.copytree(ROOT / member, source, ignore=shutil.ignore_patterns("*.so", "__pycache__", "*.egg-info"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
         "--wheel-dir", str(tmp_path), str(source)],
        check=True, timeout=300,
    )  # fmt: skip
    (wheel,) = tmp_path.glob(f"tokenbook_{member}-*.whl")
    assert "-none-any" not in wheel.name
    names = zipfile.ZipFile(wheel).namelist()
    assert any(n.startswith(f"{extension}.") and n.endswith(".so") for n in names)
    assert f"{extension}.pyi" in names


def test_replicated_collectors_share_one_ledger_and_reconcile_budgets_fleet_wide(tmp_path: Path) -> None:
    """Routing by trace ID leaves a tenant's traces on every collector: the quotas, budgets and breaker
    hold because each replica reconciles them with the one shared ClickHouse server (budgets.fleet_sync
    > 0, which needs a server URL), and the gateway routes by trace, not by tenant."""
    cfg = load_config(_rendered_k8s_config(tmp_path))
    deployment = _k8s("Deployment", "tokenbook-collector")
    assert deployment["spec"]["replicas"] > 1
    assert cfg.clickhouse.url is not None
    assert cfg.budgets.fleet_sync == 2.0  # set explicitly in the ConfigMap
    gateway = GATEWAY.read_text(encoding="utf-8")
    assert "budgets.fleet_sync" in gateway and "breaker" in gateway
    exporter = load_yaml(gateway)["exporters"]["loadbalancing"]
    assert exporter["routing_key"] == "traceID"
