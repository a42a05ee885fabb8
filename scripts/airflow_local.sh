#!/usr/bin/env bash
# A local Airflow 3 without Docker: api-server, scheduler and dag-processor on 127.0.0.1, the
# metadata on the local PostgreSQL when one answers on 127.0.0.1:5432 (else SQLite), a local
# SMTP sink (aiosmtpd) that prints every email to $AIRFLOW_HOME/smtp.log. Prints the UI address
# and the admin password; Ctrl-C stops everything. See docs/airflow.md, "A local Airflow".
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$REPO/.venv}"
export PATH="$VENV/bin:$PATH"
export AIRFLOW_HOME="${AIRFLOW_HOME:-$REPO/.airflow}"
PORT="${AIRFLOW_PORT:-8080}"
SMTP_PORT="${SMTP_PORT:-1025}"
mkdir -p "$AIRFLOW_HOME"

if [[ -z "${AIRFLOW__DATABASE__SQL_ALCHEMY_CONN:-}" ]]; then
  if "$VENV/bin/python" -c "import psycopg; psycopg.connect('host=127.0.0.1 port=5432 user=postgres dbname=postgres', connect_timeout=2).close()" 2>/dev/null; then
    "$VENV/bin/python" - <<'PY'
import psycopg
with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres", autocommit=True) as c:
    if not c.execute("SELECT 1 FROM pg_database WHERE datname = 'cx_airflow'").fetchone():
        c.execute("CREATE DATABASE cx_airflow")
PY
    export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="postgresql+psycopg://postgres@127.0.0.1:5432/cx_airflow"
    export AIRFLOW__CORE__EXECUTOR=LocalExecutor
  else
    export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="sqlite:///$AIRFLOW_HOME/airflow.db"
  fi
fi
export AIRFLOW__CORE__DAGS_FOLDER="$REPO/dags"
export AIRFLOW__CORE__PLUGINS_FOLDER="$REPO/plugins"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__PARALLELISM="${AIRFLOW__CORE__PARALLELISM:-4}"
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL="http://127.0.0.1:$PORT/execution/"
export AIRFLOW__API__BASE_URL="http://127.0.0.1:$PORT"
export AIRFLOW__API__HOST=127.0.0.1
[[ -f "$AIRFLOW_HOME/jwt_secret" ]] || "$VENV/bin/python" -c "import secrets; print(secrets.token_hex(48))" > "$AIRFLOW_HOME/jwt_secret"
export AIRFLOW__API_AUTH__JWT_SECRET="$(cat "$AIRFLOW_HOME/jwt_secret")"
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="admin:admin"
export CXPIPELINE_PACKS_DIR="${CXPIPELINE_PACKS_DIR:-$REPO/examples/airflow/packs}"
export CXPIPELINE_OUTPUT_ROOT="${CXPIPELINE_OUTPUT_ROOT:-$REPO/out/airflow}"
export AIRFLOW_CONN_SMTP_DEFAULT="${AIRFLOW_CONN_SMTP_DEFAULT:-smtp://127.0.0.1:$SMTP_PORT?disable_ssl=true&disable_tls=true&from_email=board-packs%40example.com&timeout=10&retry_limit=2}"
export CXPIPELINE_ALERT_TO="${CXPIPELINE_ALERT_TO:-ops@example.com}"
export PYTHONPATH="$REPO:$REPO/plugins${PYTHONPATH:+:$PYTHONPATH}"

airflow db migrate >"$AIRFLOW_HOME/migrate.log" 2>&1 || { tail -20 "$AIRFLOW_HOME/migrate.log"; exit 1; }
trap 'kill -TERM $(jobs -p) 2>/dev/null || true' INT TERM EXIT
python -m aiosmtpd -n -l "127.0.0.1:$SMTP_PORT" >"$AIRFLOW_HOME/smtp.log" 2>&1 &
airflow api-server --host 127.0.0.1 --port "$PORT" --workers 1 >"$AIRFLOW_HOME/api-server.log" 2>&1 &
airflow scheduler >"$AIRFLOW_HOME/scheduler.log" 2>&1 &
airflow dag-processor >"$AIRFLOW_HOME/dag-processor.log" 2>&1 &
for _ in $(seq 1 120); do
  curl -fs "http://127.0.0.1:$PORT/api/v2/monitor/health" >/dev/null 2>&1 && break
  sleep 1
done
PASSWORDS="$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated"
echo "Airflow UI:   http://127.0.0.1:$PORT  (user admin, password $(python -c "import json,sys; print(json.load(open(sys.argv[1]))['admin'])" "$PASSWORDS" 2>/dev/null || echo "see $PASSWORDS"))"
echo "Metadata DB:  $AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"
echo "Packs:        $CXPIPELINE_PACKS_DIR -> PDFs in $CXPIPELINE_OUTPUT_ROOT"
echo "Emails:       printed to $AIRFLOW_HOME/smtp.log (SMTP sink on 127.0.0.1:$SMTP_PORT)"
echo "Logs:         $AIRFLOW_HOME/{api-server,scheduler,dag-processor}.log; Ctrl-C stops all"
wait
