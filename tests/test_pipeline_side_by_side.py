"""run_pack's metrics and model stages side by side: at the same time, under the one folder lock,
both finished before anything is raised, and manifest updates that do not overwrite each other."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest

from cxpipeline import pipeline
from cxpipeline.artifacts import read_json
from cxpipeline.locking import pack_lock


CONFIG, PERIOD = SimpleNamespace(pack_id="pack"), SimpleNamespace(label="2026-Q3")


def _locked_stage(body):
    """A stage wrapped like the pipeline's own (it takes the folder's lock)."""
    return pipeline._locked(lambda config, period, output_root: body(pipeline.pack_folder(config, period, output_root)))


def test_the_two_stages_run_at_the_same_time_under_the_callers_lock(tmp_path, monkeypatch):
    monkeypatch.setenv("CXPIPELINE_LOCK_TIMEOUT", "5")  # a worker waiting for the lock fails soon
    started = threading.Event()
    threads = {}

    def metrics(folder):
        threads["metrics"] = threading.get_ident()
        # Returns only if the model stage is running meanwhile (one after the other: it times out).
        assert started.wait(timeout=20), "the model stage did not start while the metrics ran"
        pipeline._update_manifest(folder, "metrics", {}, 1.0)

    def model(folder):
        threads["model"] = threading.get_ident()
        started.set()
        pipeline._update_manifest(folder, "model", {}, 2.0)

    pair = (("metrics", _locked_stage(metrics)), ("model", _locked_stage(model)))
    said = []
    folder = pipeline.pack_folder(CONFIG, PERIOD, tmp_path)
    with pack_lock(folder):  # as run_pack holds it: the worker must not wait for it
        pipeline._run_side_by_side(pair, CONFIG, PERIOD, tmp_path, said.append)
    assert threads["metrics"] == threading.get_ident() != threads["model"]
    assert sorted(read_json(folder / "manifest.json")["stages"]) == ["metrics", "model"]
    assert sorted(m.split(" done")[0] for m in said) == ["metrics", "model"]


@pytest.mark.parametrize("failing", ["metrics", "model"])
def test_an_error_is_raised_only_once_both_stages_have_finished(tmp_path, failing):
    finished = []

    def metrics(folder):
        if failing == "metrics":
            raise ValueError("metrics broke")
        time.sleep(0.2)
        finished.append("metrics")

    def model(folder):
        time.sleep(0.5)  # still running when the metrics fail
        finished.append("model")
        if failing == "model":
            raise ValueError("model broke")

    pair = (("metrics", _locked_stage(metrics)), ("model", _locked_stage(model)))
    with pack_lock(pipeline.pack_folder(CONFIG, PERIOD, tmp_path)), pytest.raises(ValueError, match=f"{failing} broke"):
        pipeline._run_side_by_side(pair, CONFIG, PERIOD, tmp_path, lambda message: None)
    assert "model" in finished  # nothing writes into the folder after the lock is released


def test_one_cpu_or_the_environment_variable_runs_them_one_after_the_other(monkeypatch):
    stages = pipeline._stages()
    monkeypatch.setattr(pipeline.os, "sched_getaffinity", lambda pid: {0, 1})
    assert [name for name, _ in pipeline._side_by_side(stages)] == ["metrics", "model"]
    monkeypatch.setenv(pipeline.SERIAL_STAGES_ENV, "1")
    assert pipeline._side_by_side(stages) is None
    monkeypatch.delenv(pipeline.SERIAL_STAGES_ENV)
    monkeypatch.setattr(pipeline.os, "sched_getaffinity", lambda pid: {0})
    assert pipeline._side_by_side(stages) is None


def test_the_later_stages_libraries_are_imported_in_the_background(caplog):
    """run_pack imports them beside the extract; a library that is missing is left to its stage
    (logged at debug level, not raised in the thread)."""
    import logging
    import sys

    assert "sklearn.linear_model" in pipeline.LATER_IMPORTS and "weasyprint" in pipeline.LATER_IMPORTS
    assert not any(name.split(".")[0] == "cxpipeline" for name in pipeline.LATER_IMPORTS)  # no cycle across threads
    with caplog.at_level(logging.DEBUG, logger=pipeline.log.name):
        thread = pipeline._import_in_background(("json", "cx_no_such_library"))
        thread.join(timeout=30)
    assert not thread.is_alive() and thread.daemon and "json" in sys.modules
    assert "background import of cx_no_such_library failed" in caplog.text
