"""The toy backbones build: its process worker and its CPU plan.

That the parallel build gives the weights of the recorded (sequential)
build is checked by ``test_toyworld_fingerprint.py`` on the tiny world the
suite builds; ``python benchmarks/toyworld_build.py --compare`` compares
both builds tensor by tensor and times them.

Authors
 * audiollm-lobes developers, 2026
"""

import os
import time

import pytest

from audiollm_lobes.toyworld import backbones


def test_worker_returns_the_function_result():
    worker = backbones._BuildWorker("sum", "math", "fsum", [0.1] * 10)
    try:
        assert worker.result() == 1.0
    finally:
        worker.stop()


def test_worker_runs_with_passive_openmp_and_restores_the_parent_env(
    monkeypatch,
):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    worker = backbones._BuildWorker("env", "os", "getenv", "OMP_WAIT_POLICY")
    try:
        assert worker.result() == "PASSIVE"
    finally:
        worker.stop()
    assert "OMP_WAIT_POLICY" not in os.environ

    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    worker = backbones._BuildWorker("env", "os", "getenv", "OMP_WAIT_POLICY")
    try:
        assert worker.result() == "PASSIVE"
    finally:
        worker.stop()
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"


def test_worker_failure_is_raised_with_the_child_traceback():
    worker = backbones._BuildWorker("toy parse", "json", "loads", "{bad")
    try:
        with pytest.raises(RuntimeError, match="toy parse failed") as err:
            worker.result()
    finally:
        worker.stop()
    assert "JSONDecodeError" in str(err.value)


def test_worker_that_dies_without_a_result_is_reported():
    worker = backbones._BuildWorker("toy exit", "os", "_exit", 3)
    try:
        with pytest.raises(RuntimeError, match=r"toy exit.*exit code 3"):
            worker.result()
    finally:
        worker.stop()


def test_stop_ends_a_running_worker():
    worker = backbones._BuildWorker("sleeper", "time", "sleep", 120)
    start = time.time()
    worker.stop()
    assert not worker._proc.is_alive()
    assert time.time() - start < 30


def test_parallel_only_with_two_cpus(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
    assert backbones._build_in_parallel() is False
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    assert backbones._build_in_parallel() is True
