"""Parse a DAG folder with DagBag; record DB queries, sockets and connection lookups (one JSON line)."""
import json, socket, time, sys
queries, connects, lookups = [], [], []
from sqlalchemy import event
from sqlalchemy.engine import Engine
event.listen(Engine, "before_cursor_execute", lambda conn, cursor, statement, *a: queries.append(statement))
_orig = socket.socket.connect
def _connect(self, address):
    connects.append(repr(address)); return _orig(self, address)
socket.socket.connect = _connect
from airflow.sdk import Connection, Variable
def _forbid(kind):
    def f(*a, **k):
        lookups.append(kind); raise RuntimeError(f"{kind} lookup at parse time")
    return f
Connection.get = classmethod(lambda cls, *a, **k: _forbid("connection")())
Variable.get = staticmethod(_forbid("variable"))
from airflow.dag_processing.dagbag import DagBag
t0 = time.perf_counter()
bag = DagBag(dag_folder=sys.argv[1])
total = time.perf_counter() - t0
print(json.dumps({"import_errors": {k: str(v) for k, v in bag.import_errors.items()},
  "dag_ids": sorted(bag.dag_ids), "seconds": total,
  "stats": [{"file": s.file, "duration": s.duration.total_seconds() if hasattr(s.duration, "total_seconds") else s.duration, "dags": s.dag_num, "tasks": s.task_num} for s in bag.dagbag_stats],
  "heavy_modules": sorted(m for m in ("pandas", "numpy", "sklearn", "scipy", "weasyprint", "matplotlib", "pyarrow",
                                       "duckdb", "pyspark", "sqlglot") if m in sys.modules),
  "queries": queries, "connects": connects, "lookups": lookups,
  "tasks": {d: [t.task_id for t in bag.dags[d].topological_sort()] if hasattr(bag.dags[d], 'topological_sort') else sorted(bag.dags[d].task_ids) for d in bag.dag_ids},
  "edges": {d: sorted([u, t.task_id] for t in bag.dags[d].tasks for u in t.upstream_task_ids) for d in bag.dag_ids},
  "doc_md": {d: bag.dags[d].doc_md for d in bag.dag_ids},
  "undocumented_tasks": sorted(f"{d}.{t.task_id}" for d in bag.dag_ids for t in bag.dags[d].tasks if not t.doc_md),
  "params": {d: {k: {"schema": v.schema, "description": v.description} for k, v in bag.dags[d].params.items()} for d in bag.dag_ids},
  "timetable": {d: getattr(bag.dags[d].timetable, "summary", type(bag.dags[d].timetable).__name__) for d in bag.dag_ids}}))
