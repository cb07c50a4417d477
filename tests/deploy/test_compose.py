"""The compose install's files, read as docker-compose reads them: the services compose.yaml
promises, migrations in one one-shot service, every variable of .env.example documented and read,
and the check's override keeping every container on the host network. `make compose-check` runs
the same files for real."""

import re

import yaml

from tests.processes import REPO

COMPOSE = yaml.safe_load((REPO / "compose.yaml").read_text())
CHECK = yaml.safe_load((REPO / "deploy/compose-check/compose.check.yaml").read_text())
APP_SERVICES = {
    "migrate",
    "web",
    "worker-delivery",
    "worker-retry",
    "worker",
    "beat",
    "inbound-smtp",
    "submission-smtp",
}
RUNNING = APP_SERVICES - {"migrate", "submission-smtp"}
INTERPOLATED = re.compile(r"\$\{([A-Z0-9_]+)(?::?[-?][^}]*)?\}")


def env_example() -> dict[str, str]:
    pairs = {}
    for line in (REPO / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, sep, value = line.partition("=")
            assert sep, f"not NAME=value: {line!r}"
            assert name not in pairs, f"{name} twice in .env.example"
            pairs[name] = value
    return pairs


def test_the_stack_has_every_service_one_image_and_postgres_data_in_a_volume():
    services = COMPOSE["services"]
    assert set(services) == APP_SERVICES | {"postgres", "redis", "prometheus"}
    assert {services[name]["image"] for name in APP_SERVICES} == {"${PUFFERPOST_IMAGE:-pufferpost:latest}"}
    assert all(services[name]["build"]["context"] == "." for name in APP_SERVICES)
    assert "postgres-data:/var/lib/postgresql/data" in services["postgres"]["volumes"]
    assert "postgres-data" in COMPOSE["volumes"]
    assert services["submission-smtp"]["profiles"] == ["submission"]  # needs the operator's certificate


def test_fresh_mail_and_retries_have_workers_of_their_own_and_the_other_worker_every_other_queue():
    from django.conf import settings

    queues = {queue.name for queue in settings.CELERY_TASK_QUEUES}
    delivery = COMPOSE["services"]["worker-delivery"]["command"]
    retry = COMPOSE["services"]["worker-retry"]["command"]
    other = COMPOSE["services"]["worker"]["command"]
    assert delivery[delivery.index("-Q") + 1] == "delivery"
    assert retry[retry.index("-Q") + 1] == "delivery_retry"
    assert "--prefetch-multiplier=1" in delivery and "--prefetch-multiplier=1" in retry
    assert set(other[other.index("-Q") + 1].split(",")) == queues - {"delivery", "delivery_retry"}
    assert COMPOSE["services"]["beat"]["command"][:4] == ["celery", "-A", "pufferpost", "beat"]
    assert "run_inbound_smtp" in COMPOSE["services"]["inbound-smtp"]["command"]
    assert COMPOSE["services"]["web"]["command"][:2] == ["gunicorn", "pufferpost.wsgi"]


def test_migrations_run_once_in_the_migrate_one_shot_that_every_other_process_waits_for():
    services = COMPOSE["services"]
    assert services["migrate"]["command"] == ["python", "manage.py", "migrate", "--noinput"]
    assert services["migrate"]["restart"] == "no"
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    for name in APP_SERVICES - {"migrate"}:
        assert services[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}, name
        assert services[name]["depends_on"]["redis"] == {"condition": "service_healthy"}, name
        assert "migrate" not in services[name]["command"], name
    entrypoint = (REPO / "deploy/docker/entrypoint").read_text()
    assert "migrate" not in entrypoint


def test_every_variable_compose_reads_is_in_env_example_and_every_example_variable_is_read():
    example = env_example()
    compose_text = (REPO / "compose.yaml").read_text()
    used_by_compose = set(INTERPOLATED.findall(compose_text))
    assert used_by_compose - set(example) == {"PUFFERPOST_ENV_FILE"}  # only the check moves the env file
    code = "\n".join(
        path.read_text()
        for folder in ("pufferpost", "domains", "senders", "templates_app", "messaging")
        for path in (REPO / folder).rglob("*.py")
    )
    for name in example:
        read_by_code = f'"{name}"' in code
        assert read_by_code or name in used_by_compose, f"{name} in .env.example is read by nothing"
    readme = (REPO / "README.md").read_text()
    for name in example:
        assert f"`{name}`" in readme, f"{name} is not in the README"
    for required in (
        "DJANGO_SECRET_KEY",
        "DJANGO_ALLOWED_HOSTS",
        "DATABASE_URL",
        "REDIS_URL",
        "PUFFERPOST_METRICS_TOKEN",
        "PUFFERPOST_INBOUND_MX_HOST",
        "PUFFERPOST_DKIM_SELECTOR",
        "PUFFERPOST_RETURN_PATH_DOMAIN",
        "POSTGRES_PASSWORD",
    ):
        assert required in example, required


def test_the_secret_key_and_database_password_are_required_not_defaulted():
    postgres_env = COMPOSE["services"]["postgres"]["environment"]
    assert postgres_env["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD:?")
    assert env_example()["DJANGO_SECRET_KEY"].startswith("change-me")


def test_the_checks_override_puts_every_container_on_the_host_network_and_creates_no_network():
    assert "networks" not in COMPOSE and "networks" not in CHECK
    assert set(CHECK["services"]) == set(COMPOSE["services"])
    for name, service in CHECK["services"].items():
        assert service["network_mode"] == "host", name
        assert "networks" not in service and "networks" not in COMPOSE["services"][name], name
        assert "${CHECK_RESOLV_CONF}:/etc/resolv.conf:ro" in service["volumes"], name
    # Each server binds loopback only once the check sets its variables.
    assert "127.0.0.1" in CHECK["services"]["postgres"]["command"]
    assert CHECK["services"]["redis"]["command"][:3] == ["redis-server", "--bind", "127.0.0.1"]
    check_script = (REPO / "bin/compose-check").read_text()
    for flag in (
        "--bridge=none",
        "--iptables=false",
        "--ip6tables=false",
        "--data-root",
        "--exec-root",
        "--pidfile",
        "--network host",
    ):
        assert flag in check_script, flag
    assert "/var/run/docker.sock" not in check_script
    assert "network create" not in check_script


def test_the_dockerfile_builds_one_non_root_image_on_a_base_image_argument():
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "ARG BASE_IMAGE=python:3.11-slim-bookworm" in dockerfile
    assert dockerfile.count("FROM ${BASE_IMAGE}") == 2  # the venv is built, then copied without pip's cache
    assert re.search(r"^USER pufferpost$", dockerfile, re.M)
    assert "collectstatic --noinput" in dockerfile
    assert re.search(r"^HEALTHCHECK .*healthcheck\.py", dockerfile, re.M)
    assert "/healthz" in (REPO / "deploy/docker/healthcheck.py").read_text()
    ignored = (REPO / ".dockerignore").read_text().split()
    assert {".venv", "var", ".git", "tests", ".env"} <= set(ignored)


def test_every_process_but_the_web_serves_its_metrics_on_its_own_port_and_prometheus_scrapes_them_all():
    services = COMPOSE["services"]
    ports = {}
    for name in APP_SERVICES - {"migrate", "web"}:
        listen = services[name]["environment"]["PUFFERPOST_METRICS_LISTEN"]
        host, port = listen.rsplit(":", 1)
        assert host == "0.0.0.0" and services[name]["expose"] == [port], name  # the compose network only
        assert all(not published.endswith(":" + port) for published in services[name].get("ports", [])), name
        ports[name] = port
    assert len(set(ports.values())) == len(ports)
    prometheus = yaml.safe_load((REPO / "deploy/prometheus/prometheus.yml").read_text())
    (job,) = prometheus["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    assert job["authorization"]["credentials_file"] == "/prometheus/metrics-token"
    targets = {c["labels"]["service"]: c["targets"] for c in job["static_configs"]}
    assert targets == {"web": ["web:8000"], **{name: [f"{name}:{port}"] for name, port in ports.items()}}
    # The token the processes want is the one Prometheus sends; only loopback publishes its UI.
    service = services["prometheus"]
    assert service["profiles"] == ["monitoring"]
    assert "PUFFERPOST_METRICS_TOKEN" in service["command"][0] and "/prometheus/metrics-token" in service["command"][0]
    assert "./deploy/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in service["volumes"]
    assert service["ports"] == ["127.0.0.1:9090:9090"]
    assert "web" in env_example()["DJANGO_ALLOWED_HOSTS"].split(",")
    # On the check's host network every metrics port is on loopback, at a port the check picked.
    for name in ("worker-delivery", "worker-retry", "worker", "beat", "inbound-smtp"):
        assert CHECK["services"][name]["environment"]["PUFFERPOST_METRICS_LISTEN"].startswith("127.0.0.1:${CHECK_"), (
            name
        )
    assert CHECK["services"]["submission-smtp"]["environment"]["PUFFERPOST_METRICS_LISTEN"] == "127.0.0.1:0"
    assert "bin/compose-check-metrics" in (REPO / "bin/compose-check").read_text()
