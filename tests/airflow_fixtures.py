"""Run Airflow in child processes for the tests.

Importing Airflow reconfigures logging (root logger to INFO on stdout) and reads its
configuration once, at import time. To keep the rest of the test suite unaffected, every test
that needs Airflow runs a script from ``tests/airflow_scripts`` in a fresh interpreter with its
own ``AIRFLOW_HOME`` and prints one JSON line of results for the test to check.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

__all__ = ["REPO", "SCRIPTS", "airflow_env", "run_script"]

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = Path(__file__).resolve().parent / "airflow_scripts"


def airflow_env(home: Path, *, database: str | None = None, **extra: str) -> dict[str, str]:
    """Environment for an isolated Airflow: its own home, our dags/plugins, no examples."""
    home.mkdir(parents=True, exist_ok=True)
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("AIRFLOW_", "AIRFLOW__", "CXPIPELINE_"))}
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database or f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        "CXPIPELINE_TASK_RETRIES": "0",
        "PYTHONWARNINGS": "ignore",
        "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "plugins")]),
    })
    env.update({key: str(value) for key, value in extra.items()})
    return env


def run_script(name: str, env: dict[str, str], *args: str, timeout: float = 300) -> dict:
    """Run ``tests/airflow_scripts/<name>`` and return the JSON on its last stdout line."""
    proc = subprocess.run([sys.executable, str(SCRIPTS / name), *args], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise AssertionError(f"{name} exited with {proc.returncode}\n--- stdout ---\n"
                             f"{proc.stdout[-4000:]}\n--- stderr ---\n{proc.stderr[-6000:]}")
    return json.loads(lines[-1])
