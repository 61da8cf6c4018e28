"""docker-compose.yml is the production shape; no Docker engine runs here, so the file is checked."""

import re
import shlex
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from core.services import Service, TaskQueue
from core.settings import SEARCH_ATTRIBUTES, Settings, SettingsError, load_settings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
INITDB_DIR = "/docker-entrypoint-initdb.d"
ADMIN_TOOLS_IMAGE = "temporalio/admin-tools"

REQUIRED_SETTINGS = (
    *(f"DELIVERY_{service.name}_DATABASE_URL" for service in Service),
    "DELIVERY_TEMPORAL_ADDRESS",
    "DELIVERY_TEMPORAL_NAMESPACE",
    "DELIVERY_TEMPORAL_EMBEDDED",
)

# What a deployer must set (the PII sealing key, the identity provider and the Temporal tokens: a secret or
# an address of theirs has no default) and may set; every other variable the file uses must work unset.
REQUIRED = {"DELIVERY_PII_KEYS": "prod1:" + "A" * 43 + "=",
            "DELIVERY_PAYLOAD_KEYS": "payload1:" + "B" * 43 + "=",
            "DELIVERY_CODEC_JWKS_URL": "https://idp.example/.well-known/jwks.json",
            "TEMPORAL_JWKS_URL": "https://idp.example/.well-known/jwks.json",
            "TEMPORAL_UI_OIDC_PROVIDER_URL": "https://idp.example",
            "TEMPORAL_UI_OIDC_CLIENT_ID": "temporal-ui",
            "TEMPORAL_UI_OIDC_CLIENT_SECRET": "ui-s3cret",
            "TEMPORAL_SERVICE_TOKEN_FILE": "/srv/secrets/platform.jwt",
            "TEMPORAL_ADMIN_TOKEN_FILE": "/srv/secrets/admin.jwt"}
DB_PASSWORDS = {f"{name.upper()}_DB_PASSWORD": f"{name}-s3cret" for name in (*Service, "temporal")}
ENVIRONMENTS = [pytest.param(REQUIRED, id="defaults"),
                pytest.param({**REQUIRED, "POSTGRES_PASSWORD": "s3cret", **DB_PASSWORDS}, id="passwords")]

_VARIABLE = re.compile(
    r"\$\$|\$\{(?P<braced>[A-Za-z_]\w*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}|\$(?P<bare>[A-Za-z_]\w*)"
)


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """Apply compose's `${VAR}`, `${VAR:-default}`, `${VAR-default}` and `$$` rules."""

    def substitute(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group("braced") or match.group("bare")
        op, arg, current = match.group("op"), match.group("arg"), env.get(name)
        if op == ":-":
            return current or arg
        if op == "-":
            return arg if current is None else current
        if current is None or (op == ":?" and not current):
            raise AssertionError(f"${{{name}}} is required but has no default in {value!r}")
        return current

    return _VARIABLE.sub(substitute, value)


def environment(service: dict, env: Mapping[str, str] = REQUIRED) -> dict[str, str]:
    """A service's environment as a dict, interpolated (by default with only what a deployer must set)."""
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) if "=" in item else (item, None) for item in raw)
    result = {}
    for key, value in raw.items():
        assert isinstance(value, (str, int, float)) and not isinstance(value, bool), (
            f"{key}={value!r}: compose wants a string here (quote it)"
        )
        result[key] = interpolate(str(value), env)
    return result


def argv(value) -> list[str]:
    """A command or entrypoint as a list of words."""
    if value is None:
        return []
    return list(map(str, value)) if isinstance(value, list) else shlex.split(value)


def bind_mounts(service: dict) -> list[tuple[Path, str]]:
    """(host path, container path) of each bind mount; named volumes are left out."""
    mounts = []
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            source, target = volume.get("source", ""), volume["target"]
        else:
            source, target = volume.split(":")[:2]
        if source.startswith((".", "/")):
            mounts.append(((ROOT / source).resolve(), target))
    return mounts


def job_text(service: dict) -> str:
    """Everything a one-shot job runs: its command, entrypoint, environment and mounted scripts."""
    parts = [" ".join(argv(service.get("entrypoint"))), " ".join(argv(service.get("command")))]
    parts += [f"{key}={value}" for key, value in environment(service).items()]
    parts += [host.read_text() for host, _ in bind_mounts(service) if host.is_file()]
    return "\n".join(parts)


def depends_on(service: dict) -> dict[str, str]:
    """Dependency name -> condition (compose's short list form means service_started)."""
    raw = service.get("depends_on") or {}
    if isinstance(raw, list):
        return {name: "service_started" for name in raw}
    return {name: (spec or {}).get("condition", "service_started") for name, spec in raw.items()}


def queue_of(service: dict) -> str | None:
    """The task queue a service's `worker.py --queue X` command polls, if it runs one."""
    words = argv(service.get("entrypoint")) + argv(service.get("command"))
    if not any(word.endswith("worker.py") for word in words):
        return None
    for index, word in enumerate(words):
        if word == "--queue" and index + 1 < len(words):
            return words[index + 1]
        if word.startswith("--queue="):
            return word.split("=", 1)[1]
    return None


def settings_from(env: Mapping[str, str]) -> Settings:
    """Validate DELIVERY_* variables the way a process started with them would."""
    fields = {key.removeprefix("DELIVERY_").lower(): value for key, value in env.items()
              if key.startswith("DELIVERY_")}
    return load_settings(**fields)


@pytest.fixture(scope="module")
def compose() -> dict:
    loaded = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(loaded, dict) and isinstance(loaded.get("services"), dict)
    return loaded


@pytest.fixture(scope="module")
def services(compose) -> dict[str, dict]:
    return compose["services"]


@pytest.fixture(scope="module")
def workers(services) -> dict[str, dict]:
    return {name: service for name, service in services.items() if queue_of(service) is not None}


@pytest.fixture(scope="module")
def platform_services(services, workers) -> dict[str, dict]:
    """Every service that runs our code and so reads core.settings."""
    return {"migrate": services["migrate"], "api": services["api"], **workers}


@pytest.fixture(scope="module")
def admin_jobs(services) -> dict[str, dict]:
    return {name: service for name, service in services.items()
            if str(service.get("image", "")).startswith(ADMIN_TOOLS_IMAGE)}


@pytest.fixture(scope="module")
def init_sql(services) -> str:
    """The scripts that the postgres service runs on first start, without their comments."""
    scripts = [host for host, target in bind_mounts(services["postgres"])
               if target.startswith(INITDB_DIR)]
    assert scripts, f"postgres mounts no init script into {INITDB_DIR}"
    return "\n".join(re.sub(r"--[^\n]*", "", script.read_text()) for script in scripts)


@pytest.fixture(scope="module")
def init_databases(init_sql) -> set[str]:
    """Databases created by the init scripts."""
    return set(re.findall(r'CREATE\s+DATABASE\s+"?([A-Za-z_]\w*)"?', init_sql, re.IGNORECASE))


@pytest.fixture(scope="module")
def init_roles(init_sql) -> dict[str, str]:
    """Role -> the postgres container's variable its password is read from (`\\getenv`), from the init scripts."""
    getenv = dict(re.findall(r"^\\getenv\s+(\w+)\s+(\w+)\s*$", init_sql, re.MULTILINE))
    created = re.findall(r"CREATE\s+ROLE\s+(\w+)\s+LOGIN\s+PASSWORD\s+:'(\w+)'", init_sql, re.IGNORECASE)
    return {role: getenv[variable] for role, variable in created}


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_each_service_connects_as_its_own_role_to_its_own_database_only(env, services, platform_services,
                                                                       init_sql, init_roles, init_databases):
    postgres = environment(services["postgres"], env)
    superuser = postgres["POSTGRES_USER"]
    owned = dict(re.findall(r"CREATE\s+DATABASE\s+(\w+)\s+OWNER\s+(\w+)", init_sql, re.IGNORECASE))
    assert set(owned) == init_databases, f"databases without an owning role: {init_databases - set(owned)}"
    for database, role in owned.items():
        assert role in init_roles and role != superuser, f"{database} is owned by {role}"
        refused = rf"REVOKE\s+ALL\s+ON\s+DATABASE\s+{database}\s+FROM\s+PUBLIC"
        assert re.search(refused, init_sql, re.IGNORECASE), f"any role may connect to {database}"
    for name, service in platform_services.items():
        settings = settings_from(environment(service, env))
        roles = {urlsplit(settings.database_dsn(db)).username for db in Service}
        assert len(roles) == len(Service), f"{name}: services share roles {roles}"
        for db in Service:
            url = urlsplit(settings.database_dsn(db))
            assert url.username == owned[db.value], f"{name}: {db.value} as {url.username}"
            assert url.password == postgres[init_roles[url.username]], f"{name}: {db.value} password"
    temporal = environment(services["temporal"], env)
    role = temporal["POSTGRES_USER"]
    assert role not in {owned[db.value] for db in Service} | {superuser}
    assert owned[temporal["DBNAME"]] == owned[temporal["VISIBILITY_DBNAME"]] == role
    assert temporal["POSTGRES_PWD"] == temporal["SQL_PASSWORD"] == postgres[init_roles[role]]


def test_stack_has_its_services(services, admin_jobs):
    for name in ("postgres", "temporal", "temporal-ui", "migrate", "api"):
        assert name in services, f"missing service {name}"
    assert admin_jobs, f"no {ADMIN_TOOLS_IMAGE} job"
    assert services["postgres"]["image"] == "postgres:16"
    assert "pg_isready" in " ".join(argv(services["postgres"]["healthcheck"]["test"]))


def test_every_bind_mount_exists(services):
    for name, service in services.items():
        for host, _ in bind_mounts(service):
            assert host.exists(), f"{name} mounts {host}, which does not exist"


@pytest.mark.parametrize("queue", list(TaskQueue), ids=str)
def test_each_task_queue_has_one_worker_service(queue, workers):
    polling = [name for name, service in workers.items() if queue_of(service) == queue.value]
    assert polling == [f"worker-{queue.value}"], f"services polling {queue.value}: {polling}"
    replicas = workers[polling[0]].get("deploy", {}).get("replicas")
    assert isinstance(replicas, int) and replicas >= 1, f"{polling[0]} replicas: {replicas!r}"


def test_no_worker_polls_an_unknown_queue(services, workers):
    queues = {queue.value for queue in TaskQueue}
    assert {queue_of(service) for service in workers.values()} <= queues
    stray = [name for name in services if name.startswith("worker-") and name not in workers]
    assert not stray, f"worker services that run no `worker.py --queue`: {stray}"


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_platform_services_get_valid_settings(env, platform_services, services, init_databases):
    for name, service in platform_services.items():
        values = environment(service, env)
        missing = [key for key in REQUIRED_SETTINGS if key not in values]
        assert not missing, f"{name} lacks {missing}"
        try:
            settings = settings_from(values)
        except SettingsError as exc:
            pytest.fail(f"{name}: {exc}")
        assert settings.temporal_embedded is False, f"{name} would start its own Temporal"
        assert not settings.embedded_postgres, f"{name} would start an embedded Postgres"
        assert settings.temporal_host in services, f"{name}: {settings.temporal_address} is no service"
        for db in Service:
            url = urlsplit(settings.database_dsn(db))
            assert url.hostname in services, f"{name}: {db.value} database on unknown host {url.hostname}"
            assert url.path.lstrip("/") == db.value, f"{name}: {db.value} points at {url.path}"
            assert db.value in init_databases, f"database {db.value} is not created by the init script"


def test_all_platform_services_share_settings_and_image(platform_services):
    envs = {name: environment(service) for name, service in platform_services.items()}
    first = envs["api"]
    for name, values in envs.items():
        assert {k: values[k] for k in REQUIRED_SETTINGS} == {k: first[k] for k in REQUIRED_SETTINGS}, name
    images = {service.get("image") for service in platform_services.values()}
    assert len(images) == 1 and None not in images, f"platform services run different images: {images}"


# The processes that seal or open customers' data: the API (orders), Integrations (the PII purge), the partner
# callbacks (sealed webhook secrets). All of them must seal and open with the same keys.
PII_SERVICES = ("api", "worker-integrations", "worker-partner-callbacks")


@pytest.mark.parametrize("name", PII_SERVICES)
def test_the_pii_key_must_be_set_by_the_deployer(platform_services, name):
    with pytest.raises(AssertionError, match="DELIVERY_PII_KEYS"):
        environment(platform_services[name], {})
    values = environment(platform_services[name])
    assert values["DELIVERY_PII_KEYS"] == REQUIRED["DELIVERY_PII_KEYS"]
    assert settings_from(values).profile == "production"
    without = {key: value for key, value in values.items() if key != "DELIVERY_PII_KEYS"}
    with pytest.raises(SettingsError, match="DELIVERY_PII_KEYS"):
        settings_from(without)  # production never makes itself a key


@pytest.mark.parametrize(("schedule", "workflow"), [("pii-purge", "PiiPurgeWorkflow"),
                                                    ("stranded-orders", "StrandedOrdersWorkflow")])
def test_the_schedules_are_created(admin_jobs, schedule, workflow):
    text = "\n".join(job_text(job) for job in admin_jobs.values())
    assert re.search(rf"schedule create .*--schedule-id {schedule}", text.replace("\\\n", " "))
    assert f"--type {workflow}" in text and "--task-queue delivery-workflows" in text


def test_an_invalid_database_url_is_caught():
    env = {key: "postgresql://u:p@postgres:5432/x" for key in REQUIRED_SETTINGS if key.endswith("_URL")}
    env |= {"DELIVERY_TEMPORAL_ADDRESS": "temporal:7233", "DELIVERY_DISPATCH_DATABASE_URL": "mysql://postgres/dispatch"}
    with pytest.raises(SettingsError, match="DELIVERY_DISPATCH_DATABASE_URL"):
        settings_from(env)


def test_app_services_wait_for_migrations_and_temporal(services, workers):
    for name in ["api", *workers]:
        deps = depends_on(services[name])
        assert deps.get("migrate") == "service_completed_successfully", f"{name}: {deps}"
        assert deps.get("temporal") in ("service_healthy", "service_started"), f"{name}: {deps}"
    assert depends_on(services["migrate"]).get("postgres") == "service_healthy"


def test_workers_weigh_half_the_api_on_the_cpu(services, workers):
    """As `up` schedules its workers below the API: where they share a host, requests go first."""
    assert services["api"].get("cpu_shares", 1024) == 1024
    assert {name: services[name].get("cpu_shares") for name in workers} == dict.fromkeys(workers, 512)


def test_migrate_and_api_commands(services):
    migrate, api = services["migrate"], services["api"]
    assert argv(migrate.get("command"))[-3:] == ["deliveryctl", "db", "upgrade"]
    assert migrate.get("build") in (".", {"context": "."})
    command = argv(api.get("command"))
    assert command[:3] == ["uvicorn", "api.app:create_app", "--factory"]
    assert "8000:8000" in [str(port) for port in api.get("ports", [])]
    assert "/healthz" in " ".join(argv(api["healthcheck"]["test"]))


def test_the_api_serves_its_port_from_several_processes(services):
    command = [interpolate(word, REQUIRED) for word in argv(services["api"]["command"])]
    assert command[:3] == ["uvicorn", "api.app:create_app", "--factory"]
    processes = int(command[command.index("--workers") + 1])
    assert processes >= 2, "one API process per replica: a dead one leaves the replica unserved until restarted"
    assert Settings(api_processes=processes).api_processes == processes  # the value DELIVERY_API_PROCESSES allows


def test_temporal_server_runs_on_the_postgres_service(services, admin_jobs, init_databases):
    temporal = services["temporal"]
    image, _, tag = temporal["image"].partition(":")
    assert image == "temporalio/server" and tag and tag != "latest", "pin the server's tag"
    env = environment(temporal)
    assert env["DB"] == "postgres12" and env["POSTGRES_SEEDS"] in services
    for database in (env.get("DBNAME", "temporal"), env.get("VISIBILITY_DBNAME", "temporal_visibility")):
        assert database in init_databases, f"Temporal database {database} is not created"
    schema_jobs = [name for name, job in admin_jobs.items()
                   if "setup-schema" in job_text(job) and "update-schema" in job_text(job)]
    assert schema_jobs, "no admin-tools job runs temporal-sql-tool setup-schema/update-schema"
    for name in schema_jobs:
        text = job_text(admin_jobs[name])
        assert environment(admin_jobs[name]).get("DB") == "postgres12"
        assert "postgresql/v12/temporal/versioned" in text
        assert "postgresql/v12/visibility/versioned" in text
        assert depends_on(temporal).get(name) == "service_completed_successfully"


def test_search_attributes_are_registered(services, admin_jobs, workers):
    registering = {name: job_text(job) for name, job in admin_jobs.items()
                   if "search-attribute create" in job_text(job)}
    assert registering, "no admin-tools job runs `temporal operator search-attribute create`"
    text = "\n".join(registering.values())
    for attribute in SEARCH_ATTRIBUTES:
        pattern = rf"\b{attribute}=Keyword\b|--name[= ]\"?{attribute}\"?\s+--type[= ]\"?Keyword\b"
        assert re.search(pattern, text), f"search attribute {attribute} (Keyword) is not registered"
    namespace = environment(services["api"])["DELIVERY_TEMPORAL_NAMESPACE"]
    for name in registering:
        assert depends_on(services[name]).get("temporal") == "service_healthy"
        assert environment(services[name]).get("NAMESPACE", namespace) == namespace
        # Workers polling before the namespace and attributes exist would fail.
        for dependant in ["api", *workers]:
            assert depends_on(services[dependant]).get(name) == "service_completed_successfully"


def test_temporal_ui(services):
    ui = services["temporal-ui"]
    assert ui["image"].startswith("temporalio/ui:")
    assert environment(ui)["TEMPORAL_ADDRESS"] == "temporal:7233"
    assert "127.0.0.1:8233:8080" in [str(port) for port in ui.get("ports", [])]


# ---- Temporal authenticated: mTLS, the frontend's JWT authorizer, the UI behind OIDC ---------------------------

TLS_DIR = ROOT / "deploy" / "tls"
TEMPORAL_CLIENTS = ("api", "worker-delivery-workflows", "worker-dispatch", "worker-state")


def mounted_file(service: dict, container_path: str) -> Path:
    """Where on the host a file the service reads lives: under the bind mount whose target holds it."""
    for host, target in bind_mounts(service):
        if container_path.startswith(target.rstrip("/") + "/"):
            return host / container_path[len(target.rstrip("/")) + 1:]
    raise AssertionError(f"{container_path} is in no bind mount of the service")


def secret_file(compose: dict, service: dict, container_path: str) -> str:
    """The compose secret a service reads at /run/secrets/NAME: it must be granted and defined with a file."""
    name = container_path.removeprefix("/run/secrets/")
    assert container_path.startswith("/run/secrets/") and name in service.get("secrets", []), container_path
    return interpolate(compose["secrets"][name]["file"], REQUIRED)


def published(service: dict) -> list[str]:
    return [str(port) for port in service.get("ports", [])]


def test_the_frontend_requires_a_client_certificate_and_a_token(services):
    temporal = services["temporal"]
    env = environment(temporal)
    assert env["TEMPORAL_TLS_REQUIRE_CLIENT_AUTH"] == "true"
    for key in ("TEMPORAL_TLS_FRONTEND_CERT", "TEMPORAL_TLS_FRONTEND_KEY", "TEMPORAL_TLS_CLIENT1_CA_CERT",
                "TEMPORAL_TLS_SERVER_CERT", "TEMPORAL_TLS_SERVER_KEY", "TEMPORAL_TLS_SERVER_CA_CERT"):
        assert mounted_file(temporal, env[key]).parent == TLS_DIR / "server", key
    assert env["TEMPORAL_TLS_FRONTEND_SERVER_NAME"] == "temporal"
    assert env["TEMPORAL_AUTH_AUTHORIZER"] == "default" and env["TEMPORAL_AUTH_CLAIM_MAPPER"] == "default"
    assert env["TEMPORAL_JWT_KEY_SOURCE1"] == REQUIRED["TEMPORAL_JWKS_URL"]
    assert env["TEMPORAL_JWT_PERMISSIONS_CLAIM"] == "permissions"
    # The server's own workers (schedules, scanners) carry no token: they use the internal frontend.
    assert env["USE_INTERNAL_FRONTEND"] == "true"
    with pytest.raises(AssertionError, match="TEMPORAL_JWKS_URL"):
        environment(temporal, {k: v for k, v in REQUIRED.items() if k != "TEMPORAL_JWKS_URL"})
    assert all(port.startswith("127.0.0.1:") for port in published(temporal)), published(temporal)


def test_the_ui_signs_operators_in_and_listens_on_loopback_only(services):
    ui = services["temporal-ui"]
    env = environment(ui)
    assert env["TEMPORAL_AUTH_ENABLED"] == "true" and env["TEMPORAL_AUTH_TYPE"] == "oidc"
    for key, variable in (("TEMPORAL_AUTH_PROVIDER_URL", "TEMPORAL_UI_OIDC_PROVIDER_URL"),
                          ("TEMPORAL_AUTH_CLIENT_ID", "TEMPORAL_UI_OIDC_CLIENT_ID"),
                          ("TEMPORAL_AUTH_CLIENT_SECRET", "TEMPORAL_UI_OIDC_CLIENT_SECRET")):
        assert env[key] == REQUIRED[variable], key
        with pytest.raises(AssertionError, match=variable):  # no default: a deployer's client, a deployer's secret
            environment(ui, {k: v for k, v in REQUIRED.items() if k != variable})
    assert urlsplit(env["TEMPORAL_AUTH_CALLBACK_URL"]).path == "/auth/sso/callback"
    assert {"openid", "email"} <= set(env["TEMPORAL_AUTH_SCOPES"].split(","))
    for key in ("TEMPORAL_TLS_CA", "TEMPORAL_TLS_CERT", "TEMPORAL_TLS_KEY"):
        assert mounted_file(ui, env[key]).parent == TLS_DIR / "ui", key
    assert env["TEMPORAL_TLS_SERVER_NAME"] == environment(services["temporal"])["TEMPORAL_TLS_FRONTEND_SERVER_NAME"]
    assert env["TEMPORAL_TLS_ENABLE_HOST_VERIFICATION"] == "true"
    ports = published(ui)
    assert ports and all(port.startswith("127.0.0.1:") for port in ports), f"UI published on every interface: {ports}"


@pytest.mark.parametrize("name", TEMPORAL_CLIENTS)
def test_platform_services_reach_temporal_with_their_certificate_and_token(compose, services, name):
    service = services[name]
    settings = settings_from(environment(service))
    assert settings.temporal_tls and settings.temporal_api_key is None
    assert settings.temporal_tls_server_name == environment(services["temporal"])["TEMPORAL_TLS_FRONTEND_SERVER_NAME"]
    for path in (settings.temporal_tls_ca, settings.temporal_tls_cert, settings.temporal_tls_key):
        assert mounted_file(service, str(path)).parent == TLS_DIR / "client", path
    token = secret_file(compose, service, str(settings.temporal_api_key_file))
    assert token == REQUIRED["TEMPORAL_SERVICE_TOKEN_FILE"]


def test_the_setup_job_reaches_temporal_with_mtls_and_the_admin_token(compose, services):
    job = services["temporal-setup"]
    env = environment(job)
    for key in ("TEMPORAL_TLS_SERVER_CA_CERT_PATH", "TEMPORAL_TLS_CLIENT_CERT_PATH", "TEMPORAL_TLS_CLIENT_KEY_PATH"):
        assert mounted_file(job, env[key]).parent == TLS_DIR / "client", key
    assert env["TEMPORAL_TLS_SERVER_NAME"] == "temporal"
    assert secret_file(compose, job, env["TEMPORAL_API_KEY_FILE"]) == REQUIRED["TEMPORAL_ADMIN_TOKEN_FILE"]
    assert 'TEMPORAL_API_KEY=$(cat "$TEMPORAL_API_KEY_FILE")' in job_text(job)


def test_the_dev_script_makes_every_certificate_compose_mounts(services, tmp_path):
    """deploy/tls/make-dev-certs.sh writes each file the services read, and they make a working mTLS pair."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    subprocess.run(["sh", str(TLS_DIR / "make-dev-certs.sh"), str(tmp_path), "2"], check=True, capture_output=True)
    wanted = [mounted_file(service, value) for name, service in services.items()
              if name not in ("migrate", "codec-server")  # no Temporal client
              for key, value in environment(service).items()
              if key.startswith(("TEMPORAL_TLS_", "DELIVERY_TEMPORAL_TLS_")) and value.endswith(".pem")]
    assert len(wanted) >= 12
    for host in wanted:
        assert (tmp_path / host.relative_to(TLS_DIR)).is_file(), f"the script makes no {host.relative_to(ROOT)}"
    assert mtls_handshake(tmp_path, client="client") and mtls_handshake(tmp_path, client="ui")
    assert not mtls_handshake(tmp_path, client=None), "the frontend's TLS let a client without a certificate in"


def mtls_handshake(certs: Path, client: str | None) -> bool:
    """Whether a client holding `client/<name>.pem` (or no certificate) completes TLS with a server that presents
    the frontend's certificate and requires a client certificate from the CA, verifying the name `temporal`."""
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=certs / "server" / "ca.pem")
    server_context.load_cert_chain(certs / "server" / "frontend.pem", certs / "server" / "frontend-key.pem")
    server_context.verify_mode = ssl.CERT_REQUIRED
    client_context = ssl.create_default_context(cafile=certs / "ca" / "ca.pem")
    if client is not None:
        folder = certs / ("ui" if client == "ui" else "client")
        client_context.load_cert_chain(folder / f"{client}.pem", folder / f"{client}-key.pem")
    listener = socket.create_server(("127.0.0.1", 0))
    outcome: dict[str, bool] = {}

    def serve() -> None:
        connection, _ = listener.accept()
        try:
            with server_context.wrap_socket(connection, server_side=True) as tls:
                outcome["server"] = tls.getpeercert() is not None
                tls.sendall(b"ok")
        except (ssl.SSLError, OSError):
            outcome["server"] = False

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with (socket.create_connection(listener.getsockname(), timeout=5) as raw,
              client_context.wrap_socket(raw, server_hostname="temporal") as tls):
            outcome["client"] = tls.recv(2) == b"ok"
    except (ssl.SSLError, OSError):
        outcome["client"] = False
    finally:
        thread.join(timeout=5)
        listener.close()
    return outcome.get("server", False) and outcome.get("client", False)


def test_the_ui_reads_payloads_through_the_codec_server_which_answers_operators_only(services):
    codec = services["codec-server"]
    assert argv(codec["command"]) == ["deliveryctl", "codec-server"]
    assert codec["image"] == services["api"]["image"]
    assert codec["ports"] == ["127.0.0.1:8234:8234"], "the codec server is published on loopback only"
    values = environment(codec)
    settings = settings_from(values)
    assert settings.profile == "production" and settings.payload_keys == REQUIRED["DELIVERY_PAYLOAD_KEYS"]
    assert settings.codec_jwks_url == REQUIRED["DELIVERY_CODEC_JWKS_URL"]
    assert settings.codec_issuer == REQUIRED["TEMPORAL_UI_OIDC_PROVIDER_URL"]
    with pytest.raises(AssertionError, match="DELIVERY_CODEC_JWKS_URL"):
        environment(codec, {k: v for k, v in REQUIRED.items() if k != "DELIVERY_CODEC_JWKS_URL"})
    ui = environment(services["temporal-ui"])
    assert ui["TEMPORAL_CODEC_ENDPOINT"] == "http://localhost:8234"
    assert ui["TEMPORAL_CODEC_PASS_ACCESS_TOKEN"] == "true"
    assert settings.codec_ui_origin == ui["TEMPORAL_AUTH_CALLBACK_URL"].removesuffix("/auth/sso/callback")


def test_no_private_key_or_token_is_committed():
    git = shutil.which("git")
    if git is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    tracked = subprocess.run([git, "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    pem_key = re.compile(rb"-----BEGIN [A-Z ]*PRIVATE KEY-----")
    keys = []
    for name in filter(None, tracked.decode().split("\0")):
        path = ROOT / name
        if name.endswith((".pem", ".key", ".jwt")) or (path.is_file() and pem_key.search(path.read_bytes())):
            keys.append(name)
    assert not keys, f"private keys or tokens in git: {keys}"
    for made in ("ca/ca-key.pem", "server/frontend-key.pem", "client/client-key.pem", "ui/ui-key.pem",
                 "client/service.jwt"):
        ignored = subprocess.run([git, "check-ignore", "-q", str(TLS_DIR / made)], cwd=ROOT)
        assert ignored.returncode == 0, f"deploy/tls/{made} would not be ignored by git"


def test_dockerfile_runs_as_non_root():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", dockerfile, re.MULTILINE)
    users = re.findall(r"^USER\s+(\S+)", dockerfile, re.MULTILINE)
    assert users and users[-1] not in ("root", "0")
    ignored = (ROOT / ".dockerignore").read_text().split()
    for entry in (".venv", ".data", ".git"):
        assert entry in ignored
    assert any("__pycache__" in entry for entry in ignored)


def test_docker_compose_config_validates():
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("docker client not installed: `docker compose config` validation not run")
    probe = subprocess.run([docker, "compose", "version"], capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        pytest.skip("docker compose plugin not installed: `docker compose config` validation not run")
    result = subprocess.run([docker, "compose", "-f", str(COMPOSE_FILE), "config", "-q"],
                            capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 0, result.stderr


def test_a_robot_retry_as_long_as_the_demand_hold_is_refused():
    env = {key: "postgresql://u:p@postgres:5432/x" for key in REQUIRED_SETTINGS if key.endswith("_URL")}
    env |= {"DELIVERY_TEMPORAL_ADDRESS": "temporal:7233", "DELIVERY_DEMAND_HOLD_SECONDS": "121"}
    assert settings_from(env).lifecycle.robot_retry_seconds == 120
    with pytest.raises(SettingsError, match="DELIVERY_LIFECYCLE__ROBOT_RETRY_SECONDS"):
        settings_from(env | {"DELIVERY_DEMAND_HOLD_SECONDS": "120"})
