"""`tradekit gate`: rules from [gate] or flags, the gate/1 verdict, and its exit codes."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import pytest

from tradekit.config import GateConfig
from tradekit.gate import evaluate

GOLDEN = Path(__file__).parent / "golden" / "gate_verdict.json"

# The parts of a backtest/1 report the gate reads; other keys are ignored.
REPORT: dict[str, Any] = {
    "schema": "backtest/1",
    "span": {"start": "2024-01-01T00:00:00Z", "end": "2024-07-01T00:00:00Z", "timeframe": "1h"},
    "inputs": {"ohlcv": {"hash": "sha256:aa"}, "predictions": {"hash": "sha256:bb"}},
    # The settings the backtest ran with (a part of each section): the verdict keeps them.
    "config": {
        "policy": {"entry_threshold": 0.002, "partial_exits": [0.02, 0.04]},
        "risk": {"max_open_positions": 3},
        "backtest": {"fee": 0.0026},
    },
    "metrics": {
        "total_return": 0.18,
        "buy_and_hold_return": 0.25,
        "sharpe": 1.4,
        "sortino": 2.1,
        "probabilistic_sharpe": 0.93,
        "max_drawdown": 0.12,
        "profit_factor": 1.6,
        "win_rate": 0.52,
        "trades": 41,
    },
}


def write(path: Path, doc: dict[str, Any]) -> str:
    path.write_text(json.dumps(doc), encoding="utf-8")
    return str(path)


def with_metrics(**metrics: Any) -> dict[str, Any]:
    doc = copy.deepcopy(REPORT)
    doc["metrics"].update(metrics)
    return doc


def test_defaults_pass_a_good_report(run_cli, tmp_path):
    r = run_cli("gate", write(tmp_path / "r.json", REPORT), "--json")
    assert r.code == 0, r.err
    verdict = json.loads(r.out)
    assert verdict["schema"] == "gate/1" and verdict["passed"] is True
    assert [x["rule"] for x in verdict["rules"]] == ["min_sortino", "max_drawdown", "min_trades"]
    assert "gate passed" in r.err


@pytest.mark.parametrize(
    ("metrics", "failed"),
    [
        ({"sortino": 1.49}, ["min_sortino"]),
        ({"max_drawdown": 0.2001}, ["max_drawdown"]),
        ({"trades": 19}, ["min_trades"]),
        (
            {"sortino": 0.3, "max_drawdown": 0.5, "trades": 2},
            ["min_sortino", "max_drawdown", "min_trades"],
        ),
    ],
)
def test_each_default_rule_fails_on_its_own_metric(run_cli, tmp_path, metrics, failed):
    r = run_cli("gate", write(tmp_path / "r.json", with_metrics(**metrics)), "--json")
    assert r.code == 1
    assert json.loads(r.out)["failed"] == failed
    assert f"gate failed: {', '.join(failed)}" in r.err


def test_thresholds_are_inclusive():
    cfg = GateConfig(min_sortino=2.1, max_drawdown=0.12, min_trades=41)
    assert evaluate(REPORT, cfg)["passed"] is True


def test_flags_override_the_config(run_cli, tmp_path):
    Path("tradekit.toml").write_text("[gate]\nmin_sortino = 3.0\n")
    report = write(tmp_path / "r.json", REPORT)
    assert run_cli("gate", report).code == 1  # sortino 2.1 < 3.0 from the file
    assert run_cli("gate", report, "--min-sortino", "2").code == 0
    r = run_cli("gate", report, "--min-sortino", "2", "--beat-buy-and-hold", "--json")
    assert r.code == 1
    (rule,) = [x for x in json.loads(r.out)["rules"] if x["rule"] == "must_beat_buy_and_hold"]
    assert (rule["value"], rule["threshold"], rule["passed"]) == (0.18, 0.25, False)


def test_optional_rules_are_checked_only_when_set(run_cli, tmp_path):
    report = write(tmp_path / "r.json", REPORT)
    r = run_cli(
        "gate", report, "--min-profit-factor", "1.7", "--min-win-rate", "0.5",
        "--min-sharpe", "1", "--min-psr", "0.95", "--json",
    )  # fmt: skip
    assert r.code == 1
    verdict = json.loads(r.out)
    assert verdict["failed"] == ["min_psr", "min_profit_factor"]
    assert {x["rule"] for x in verdict["rules"]} >= {"min_win_rate", "min_sharpe"}


def test_undefined_metrics():
    # A null Sortino (no downside) is not evidence of quality: the rule fails, with a note.
    v = evaluate(with_metrics(sortino=None), GateConfig())
    assert v["failed"] == ["min_sortino"] and v["rules"][0]["note"] == "undefined in the report"
    # A null profit factor means no losing trade, a pass, when there were trades.
    v = evaluate(with_metrics(profit_factor=None), GateConfig(min_profit_factor=1.2))
    assert v["passed"] is True
    v = evaluate(
        with_metrics(profit_factor=None, trades=0), GateConfig(min_profit_factor=1.2, min_trades=0)
    )
    assert v["failed"] == ["min_profit_factor"]


def test_verdict_file_and_golden(run_cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "report.json", with_metrics(sortino=1.2))
    r = run_cli("gate", "report.json", "-o", "verdict.json", "--min-win-rate", "0.5")
    assert r.code == 1
    verdict = json.loads((tmp_path / "verdict.json").read_text())
    if os.environ.get("TRADEKIT_UPDATE_GOLDEN"):
        GOLDEN.write_text(json.dumps(verdict, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    assert verdict == json.loads(GOLDEN.read_text(encoding="utf-8"))
    # The table on stderr names each rule with its value and threshold.
    assert "Sortino ratio" in r.err and "1.200" in r.err and ">= 1.500" in r.err
    assert "FAIL" in r.err


def test_reads_stdin(run_cli, monkeypatch):
    import io
    import sys

    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps(REPORT)))
    r = run_cli("gate", "-", "--json")
    assert r.code == 0
    assert json.loads(r.out)["report"] == {"path": None, "hash": None}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        ("", "empty file"),
        ("{not json", "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"schema": "gate/1"}', "schema is 'gate/1', expected 'backtest/1'"),
        ('{"metrics": {}}', 'no "schema" field'),
        ('{"schema": "backtest/1"}', 'no "metrics" object'),
        (
            json.dumps({**REPORT, "metrics": {"sortino": 2, "trades": 30}}),
            "metrics.max_drawdown is missing",
        ),
        (json.dumps(with_metrics(trades="many")), "metrics.trades is 'many'"),
    ],
)
def test_unreadable_reports_exit_3(run_cli, tmp_path, content, message):
    path = tmp_path / "report.json"
    if content is not None:
        path.write_text(content)
    r = run_cli("gate", str(path), "-o", str(tmp_path / "verdict.json"))
    assert r.code == 3
    assert r.err.count("\n") == 1 and r.err.startswith("tradekit: error: ")
    assert str(path) in r.err and message in r.err
    assert not (tmp_path / "verdict.json").exists()


def test_bad_flag_value_is_a_usage_error(run_cli, tmp_path):
    r = run_cli("gate", write(tmp_path / "r.json", REPORT), "--max-drawdown", "20")
    assert r.code == 2
    assert "--max-drawdown: must be a fraction" in r.err


# -- the receipt: `gate REPORT --model DIR` ---------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small real LightGBM model dir (its manifest names its out-of-sample predictions)."""
    from tests.test_models import features_frame, write_config, write_features
    from tradekit.cli.main import main

    d = tmp_path_factory.mktemp("gate-model")
    write_features(d / "f.parquet", features_frame(rows=200))
    cfg = write_config(d / "m.toml", n_estimators=5, train_window=100, test_window=50, step=50)
    assert main(["-c", str(cfg), "train", str(d / "f.parquet"), "-o", str(d / "model")]) == 0
    return d / "model"


@pytest.fixture
def model(trained: Path, tmp_path: Path) -> Path:
    import shutil

    return Path(shutil.copytree(trained, tmp_path / "model"))


def report_of(model: Path, **metrics: Any) -> dict[str, Any]:
    """A backtest/1 report made from ``model``'s out-of-sample predictions."""
    doc = with_metrics(**metrics)
    oos = json.loads((model / "manifest.json").read_text())["oos_predictions"]
    doc["inputs"] = {"predictions": {"path": str(model / oos["file"]), "sha256": oos["sha256"]}}
    return doc


def test_model_receipt_names_the_exact_model(run_cli, model, tmp_path):
    from tradekit.contracts import file_hash
    from tradekit.gate import RECEIPT, model_identity, receipt_problem
    from tradekit.models.manifest import files_version

    report = write(tmp_path / "report.json", report_of(model))
    r = run_cli("gate", report, "--model", str(model), "--json")
    assert r.code == 0, r.err
    verdict = json.loads(r.out)
    assert json.loads((model / RECEIPT).read_text()) == verdict
    manifest = json.loads((model / "manifest.json").read_text())
    assert verdict["model"] == {
        "path": str(model),
        "version": files_version(manifest["files"]),
        "manifest_sha256": file_hash(model / "manifest.json"),
        "oos_predictions_sha256": manifest["oos_predictions"]["sha256"],
    }
    assert verdict["report"] == {"path": report, "hash": file_hash(report)}
    assert f"stored in {model / RECEIPT}" in r.err
    identity = model_identity(model)
    assert receipt_problem(model, identity) is None
    # Any change to the model (here: its manifest) makes the receipt another model's.
    other = {**identity, "manifest_sha256": "sha256:" + "0" * 64}
    assert "judged another model" in (receipt_problem(model, other) or "")


def test_a_failed_verdict_is_a_receipt_too(run_cli, model, tmp_path):
    from tradekit.gate import RECEIPT, model_identity, receipt_problem

    report = write(tmp_path / "report.json", report_of(model, sortino=0.4))
    r = run_cli("gate", report, "--model", str(model))
    assert r.code == 1 and "gate failed: min_sortino" in r.err
    assert json.loads((model / RECEIPT).read_text())["passed"] is False
    problem = receipt_problem(model, model_identity(model))
    assert problem == "the model failed the gate (min_sortino)"


def test_a_hand_edited_pass_is_no_pass(run_cli, model, tmp_path):
    from tradekit.gate import RECEIPT, model_identity, receipt_problem

    write(tmp_path / "report.json", report_of(model, trades=3))
    assert run_cli("gate", str(tmp_path / "report.json"), "--model", str(model)).code == 1
    doc = json.loads((model / RECEIPT).read_text())
    doc["passed"] = True
    (model / RECEIPT).write_text(json.dumps(doc))
    problem = receipt_problem(model, model_identity(model))
    assert problem == "verdict.json says passed, but its rules do not all pass"


def test_a_report_of_other_predictions_is_refused(run_cli, model, tmp_path):
    """A verdict on another model's backtest would vouch for a model nobody tested."""
    doc = report_of(model)
    doc["inputs"]["predictions"]["sha256"] = "sha256:" + "a" * 64
    report = write(tmp_path / "report.json", doc)
    r = run_cli("gate", report, "--model", str(model), "-o", str(tmp_path / "v.json"))
    assert r.code == 3, r.err
    assert r.err.count("\n") == 1 and report in r.err and "out-of-sample predictions" in r.err
    assert not (model / "verdict.json").exists() and not (tmp_path / "v.json").exists()
    # The plain report of test_gate (no predictions hash at all) is refused the same way.
    r = run_cli("gate", write(tmp_path / "plain.json", REPORT), "--model", str(model))
    assert r.code == 3 and "(not named)" in r.err


def test_a_bad_model_dir_is_refused(run_cli, model, tmp_path):
    report = write(tmp_path / "report.json", report_of(model))
    r = run_cli("gate", report, "--model", str(tmp_path / "nope"))
    assert r.code == 3 and "nope" in r.err and "no such model directory" in r.err
    with open(model / "model.txt", "a") as fh:
        fh.write("tampered\n")
    r = run_cli("gate", report, "--model", str(model))
    assert r.code == 3 and "sha256 differs" in r.err
    assert not (model / "verdict.json").exists()


def test_sections_extend_the_verdict_but_never_replace_its_core():
    """The sweep rules and block come in through build_verdict (one assembler)."""
    from tradekit.gate import build_verdict, check_rules

    rules = check_rules(REPORT["metrics"], GateConfig())
    extra = {"rule": "min_dsr", "metric": "dsr", "label": "deflated Sharpe", "op": ">=",
             "threshold": 0.95, "value": 0.5, "passed": False}  # fmt: skip
    v = build_verdict(REPORT, [*rules, extra], sections={"sweep": {"trials": 40}})
    assert v["failed"] == ["min_dsr"] and v["passed"] is False and v["sweep"] == {"trials": 40}
    with pytest.raises(ValueError, match="core field"):
        build_verdict(REPORT, rules, sections={"passed": True})


def test_unjudged_settings_name_each_difference_and_skip_unknown_keys() -> None:
    from tradekit.gate import unjudged_settings

    judged = REPORT["config"]
    same = {"policy": {"entry_threshold": 0.002, "partial_exits": [0.02, 0.04]}}
    assert unjudged_settings(judged, same) == []
    running = {
        "policy": {"entry_threshold": 0.01, "partial_exits": [0.02], "new_key": 1},
        "risk": {"max_open_positions": 3},
        "costs": {"fee": 1.0},  # a section the receipt does not name: not compared
    }
    assert unjudged_settings(judged, running) == [
        "[policy] entry_threshold = 0.01 (judged: 0.002)",
        "[policy] partial_exits = [0.02] (judged: [0.02, 0.04])",
    ]
