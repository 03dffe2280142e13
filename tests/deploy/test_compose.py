"""The docker-compose stack, checked without a Docker engine: services, commands, healthchecks and env wiring."""

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _command(service: dict) -> str:
    command = service["command"]
    return " ".join(command) if isinstance(command, list) else command


def test_the_stack_has_every_service(compose):
    assert set(compose["services"]) == {"postgres", "redis", "migrate", "web", "stream", "worker", "beat"}
    assert compose["services"]["postgres"]["image"] == "postgres:16"
    assert compose["services"]["redis"]["image"] == "redis:7"
    assert set(compose["volumes"]) == {"postgres-data", "redis-data", "app-data"}


def test_commands_run_the_right_programs(compose):
    services = compose["services"]
    assert "manage.py migrate" in _command(services["migrate"])
    assert "manage.py loadcatalog" in _command(services["migrate"])
    assert services["migrate"]["restart"] == "no"
    assert "gunicorn tutum_api.wsgi" in _command(services["web"])
    assert "--bind 0.0.0.0:8000" in _command(services["web"])
    # The REST server's shared settings (limits, keep-alive, JSON errors), in compose as in `make run` and the image.
    assert "--config python:tutum_api.gunicorn_conf" in _command(services["web"])
    assert '"--config", "python:tutum_api.gunicorn_conf"' in (ROOT / "Dockerfile").read_text()
    assert "celery -A tutum_api worker --pool threads" in _command(services["worker"])
    # The engine yields the CPU to the API under contention, as `make run`'s workers do at nice 10.
    assert services["worker"]["cpu_shares"] <= 128
    assert all("cpu_shares" not in services[name] for name in ("web", "stream", "postgres", "redis"))
    assert "celery -A tutum_api beat" in _command(services["beat"])
    # The stream server: the ASGI application under uvicorn, with the websockets library (pings, back-pressure).
    assert "uvicorn tutum_api.asgi:application" in _command(services["stream"])
    assert "--port 8001 --ws websockets-sansio" in _command(services["stream"])


def test_healthchecks_and_start_order(compose):
    services = compose["services"]
    for name in ("postgres", "redis", "web", "stream", "worker"):
        assert services[name]["healthcheck"]["test"], name
    assert "/readyz" in " ".join(services["web"]["healthcheck"]["test"])
    assert "8001/healthz" in " ".join(services["stream"]["healthcheck"]["test"])
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    for name in ("web", "stream", "worker", "beat"):
        assert services[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
        assert services[name]["depends_on"]["redis"] == {"condition": "service_healthy"}


def test_every_app_container_gets_the_same_wiring(compose):
    for name in ("migrate", "web", "stream", "worker", "beat"):
        env = compose["services"][name]["environment"]
        assert "@postgres:5432/" in env["DATABASE_URL"]
        assert env["CELERY_BROKER_URL"].startswith("redis://redis:6379/")
        assert env["SIMULATE_PROVIDERS"] == "${SIMULATE_PROVIDERS:-0}"  # real clouds unless the operator says so


def test_the_secret_key_is_required_and_has_no_default(compose):
    for name in ("migrate", "web", "stream", "worker", "beat"):
        # `${VAR:?message}`: compose refuses to start, printing the message, when the variable is unset or empty.
        value = compose["services"][name]["environment"]["DJANGO_SECRET_KEY"]
        assert value.startswith("${DJANGO_SECRET_KEY:?"), value
        assert ".env" in value
    assert "change-me" not in (ROOT / "docker-compose.yml").read_text()


def test_the_credentials_keys_are_required_and_have_no_default(compose):
    """Linked cloud accounts and webhook secrets are encrypted under CREDENTIALS_KEYS: without it the server could
    store none of them, so compose refuses to start rather than answer 503 to every link."""
    for name in ("migrate", "web", "stream", "worker", "beat"):
        value = compose["services"][name]["environment"]["CREDENTIALS_KEYS"]
        assert value.startswith("${CREDENTIALS_KEYS:?"), value
    example = (ROOT / ".env.example").read_text()
    assert re.search(r"^CREDENTIALS_KEYS=$", example, flags=re.MULTILINE)
    assert "Fernet.generate_key()" in example


def test_env_example_leaves_the_secret_key_empty_and_says_how_to_make_one():
    example = (ROOT / ".env.example").read_text()
    assert re.search(r"^DJANGO_SECRET_KEY=$", example, flags=re.MULTILINE)
    assert "python3 -c 'import secrets; print(secrets.token_urlsafe(50))'" in example
    assert "change-me" not in example


def test_every_variable_the_compose_file_reads_is_documented():
    used = set(re.findall(r"\$\{([A-Z_]+)", (ROOT / "docker-compose.yml").read_text()))
    documented = set(re.findall(r"^([A-Z_]+)=", (ROOT / ".env.example").read_text(), flags=re.MULTILINE))
    assert used - documented == set()


def test_the_image_copies_every_package_the_server_imports():
    dockerfile = (ROOT / "Dockerfile").read_text()
    for path in ("requirements.txt", "manage.py", "tutum_api", "nodeclusters", "providers"):
        assert f"COPY {path}" in dockerfile
        assert (ROOT / path).exists()
