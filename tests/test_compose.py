"""docker-compose.yml and the Dockerfile: valid Compose, and wired to this repository.

Docker itself is not available here, so the file is validated against the Compose
specification's JSON schema (shipped with check-jsonschema) and its wiring is checked by
reading it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
COMPOSE = REPO / "docker-compose.yml"


def _compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def _check_jsonschema() -> str:
    found = Path(sys.executable).with_name("check-jsonschema")
    return str(found) if found.exists() else shutil.which("check-jsonschema")


def test_compose_file_validates_against_the_compose_spec():
    proc = subprocess.run([_check_jsonschema(), "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ok" in proc.stdout


def test_schema_check_rejects_a_broken_file(tmp_path):
    broken = tmp_path / "docker-compose.yml"
    broken.write_text("services:\n  api:\n    image: x\n    ports: 8080\n    restart: sometimes\n")
    proc = subprocess.run([_check_jsonschema(), "--builtin-schema", "vendor.compose-spec", str(broken)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0


def test_services_are_the_airflow_3_set_built_from_this_repo():
    services = _compose()["services"]
    assert set(services) >= {"postgres", "mailpit", "airflow-init", "airflow-apiserver",
                             "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer"}
    airflow = [name for name in services if name.startswith("airflow-")]
    for name in airflow:
        service = services[name]
        assert service["build"] == ".", name
        env = service["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].endswith("@postgres/airflow")
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
        assert env["AIRFLOW_CONN_SMTP_DEFAULT"].startswith("smtp://mailpit:1025?")
        assert len(env["AIRFLOW__API_AUTH__JWT_SECRET"].split(":-", 1)[-1].rstrip("}")) >= 64
    commands = {services[n].get("command") for n in airflow if isinstance(services[n].get("command"), str)}
    assert {"api-server", "scheduler", "dag-processor", "triggerer"} <= commands
    assert "1025:1025" in services["mailpit"]["ports"]


def test_mounted_folders_exist_and_match_the_dag_settings():
    common = _compose()["services"]["airflow-scheduler"]
    mounts = dict(volume.split(":", 1) for volume in common["volumes"])
    for source in ("./dags", "./plugins", "./templates", "./examples/airflow/packs"):
        assert (REPO / source).is_dir(), source
    assert mounts["./dags"] == "/opt/airflow/dags" and mounts["./plugins"] == "/opt/airflow/plugins"
    env = common["environment"]
    assert mounts["./examples/airflow/packs"] == env["CXPIPELINE_PACKS_DIR"]
    assert mounts["./templates"] == env["CXPIPELINE_TEMPLATES"]
    assert mounts["./out"] == env["CXPIPELINE_OUTPUT_ROOT"]
    assert list((REPO / "examples/airflow/packs").glob("*.yaml"))


def test_dockerfile_builds_on_airflow_3_3_and_installs_this_package():
    text = (REPO / "Dockerfile").read_text()
    assert re.search(r"^FROM apache/airflow:3\.3\.2-python3\.11$", text, re.M)
    assert "libpango-1.0-0" in text and "libharfbuzz-subset0" in text
    assert "-c /opt/cxpipeline/requirements.lock -e /opt/cxpipeline" in text
    assert (REPO / "requirements.lock").read_text().count("apache-airflow==3.3.2") == 1
    ignored = (REPO / ".dockerignore").read_text().split()
    assert ".venv" in ignored and ".git" in ignored and "templates" not in ignored
