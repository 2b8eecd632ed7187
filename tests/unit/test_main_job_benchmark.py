"""The stage breakdown of ``benchmarks/main_job.py``, on a fabricated run.

The benchmark itself runs the main command for about 20 minutes; here its
accounting is checked on the records a run leaves (``world.json``,
``backbones.json``, the run's ``log.txt`` and ``train_log.txt``), with
figures worked by hand.
"""

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def main_job():
    path = ROOT / "benchmarks" / "main_job.py"
    spec = importlib.util.spec_from_file_location("main_job_bench", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _fabricate(tmp_path):
    home, run = tmp_path / "home", tmp_path / "run"
    world = home / "toyworld" / "small"
    (world / "backbones").mkdir(parents=True)
    run.mkdir()
    (world / "world.json").write_text(json.dumps({"build_seconds": 28.0}))
    timings = {
        "tokenizer_s": 0.5,
        "lm_s": 500.0,
        "encoders_s": 400.0,
        "lm_and_encoders_s": 501.5,
        "parallel": True,
    }
    (world / "backbones" / "backbones.json").write_text(
        json.dumps({"timings": timings})
    )
    (run / "train_log.txt").write_text(
        "epoch: 1, lr: 2e-03 - train loss: 2.8, train seconds: 60.0 - "
        "valid loss: 1.4, valid seconds: 1.5\n"
        "epoch: 2, lr: 0 - train loss: 2.0, train seconds: 40.0 - "
        "valid loss: 1.1, valid seconds: 0.5\n"
        "Epoch loaded: 2 - test loss: 0.6, test seconds: 11.0\n"
        "Epoch loaded: 2 - test loss: 0.7, test seconds: 9.0\n"
        "Epoch loaded: 2 - test loss: 0.7, test seconds: 8.0\n"
    )
    (run / "log.txt").write_text(
        "x - audiollm_lobes.feature_cache - INFO - precomputed encoder "
        "features of 5200 clips (10600 examples, 0 clips already cached) "
        "in 61.5 s\n"
        "x - audiollm_lobes.feature_cache - INFO - precomputed encoder "
        "features of 60 clips (120 examples, 0 clips already cached) "
        "in 3.5 s\n"
    )
    return home, run


def test_stage_table_accounts_for_every_second(main_job, tmp_path):
    home, run = _fabricate(tmp_path)
    rows = dict(main_job.stage_table(760.0, home, run))
    assert rows["toy world data"] == 28.0
    assert rows["toy backbones (LM, encoders)"] == 501.5
    assert rows["encoder features precomputed (train, valid, test)"] == 65.0
    assert rows["training epochs"] == 100.0
    assert rows["validation"] == 2.0
    assert rows["test (k_eval)"] == 11.0
    assert rows["k_eval sweep (one test pass per k)"] == 17.0
    # 760 - (28 + 501.5 + 0.5 tokenizer) - 65 - 100 - 2 - (11 + 17)
    rest = rows["rest: start-up, loading, usage report, ..."]
    assert rest == pytest.approx(35.0)
    assert rows["total"] == 760.0


def test_missing_records_count_as_zero(main_job, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "train_log.txt").write_text(
        "epoch: 1 - train seconds: 50.0 - valid seconds: 1.0\n"
    )
    rows = dict(main_job.stage_table(80.0, tmp_path / "empty_home", run))
    assert "toy world data" not in rows
    assert rows["encoder features precomputed (train, valid, test)"] == 0.0
    assert rows["test (k_eval)"] == 0.0
    assert rows["rest: start-up, loading, usage report, ..."] == 29.0
