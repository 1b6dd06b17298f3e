"""`gate --sweep`: a selection on pure noise passes the plain gate and fails the deflated one;
the trial count is the sweep's; a report that is not the sweep's choice is refused."""

from __future__ import annotations

import json
from pathlib import Path

from tests.test_sweep import make_inputs

# No costs and no stop: the predictions are pure noise, so any edge a trial shows is luck.
CONFIG = """
[backtest]
fee = 0.0
slippage = 0.0
[risk]
daily_loss_halt_frac = 0.0
max_drawdown_halt_frac = 0.0
[policy]
stoploss = 0.0
"""
SPACE = """
objective = "sortino"
[constraints]
min_trades = 20
[params]
"policy.entry_threshold" = { low = 0.0, high = 0.004 }
"policy.exit_threshold" = { low = -0.004, high = 0.0 }
"policy.persistence" = { low = 1, high = 6, step = 1 }
"risk.max_open_positions" = { low = 1, high = 3, step = 1 }
"""
PLAIN = ("--min-sortino", "1.0", "--max-drawdown", "0.3", "--min-trades", "20", "--min-psr", "0.9")


def test_noise_passes_the_plain_gate_and_fails_the_deflated_one(run_cli, tmp_path):
    o, p = make_inputs(tmp_path, n=1500, m=3, seed=21)
    Path("tradekit.toml").write_text(CONFIG, encoding="utf-8")
    Path("space.toml").write_text(SPACE, encoding="utf-8")
    args = ("--trials", "200", "--sampler", "random", "--seed", "2")
    r = run_cli("sweep", "space.toml", "--ohlcv", o, "-p", p, "-o", "sw", *args)
    assert r.code == 0, r.err
    r = run_cli("--config", "sw/best.toml", "backtest", o, "-p", p, "-o", "best.json")
    assert r.code == 0, r.err
    # The plain gate sees a fine strategy...
    r = run_cli("gate", "best.json", *PLAIN)
    assert r.code == 0, r.err
    # ...chosen out of 200 trials on noise: deflated, it is no better than luck.
    r = run_cli("gate", "best.json", *PLAIN, "--sweep", "sw", "--json")
    assert r.code == 1, r.err
    verdict = json.loads(r.out)
    assert set(verdict["failed"]) == {"min_dsr", "max_pbo"}
    sweep = verdict["sweep"]
    doc = json.loads(Path("sw/sweep.json").read_text())
    assert sweep["trials"] == doc["n_trials"] == 200  # from the record, not from the user
    assert sweep["dsr"] < 0.95 < verdict["rules"][3]["value"]  # DSR < 0.95 < PSR
    assert sweep["pbo"] > 0.5
    rules = {x["rule"]: x for x in verdict["rules"]}
    assert rules["min_dsr"]["value"] == sweep["dsr"] and rules["min_dsr"]["threshold"] == 0.95
    assert "200 trials" in rules["min_dsr"]["label"]


def test_a_report_that_is_not_the_sweeps_choice_is_refused(run_cli, tmp_path):
    o, p = make_inputs(tmp_path, n=600, m=2, seed=3)
    Path("tradekit.toml").write_text(CONFIG, encoding="utf-8")
    Path("space.toml").write_text(SPACE, encoding="utf-8")
    r = run_cli("sweep", "space.toml", "--ohlcv", o, "-p", p, "-o", "sw", "--trials", "8")
    assert r.code == 0, r.err
    # The user's own config, not best.toml: its Sharpe ratio was not what the sweep deflated.
    assert run_cli("backtest", o, "-p", p, "-o", "mine.json").code == 0
    r = run_cli("gate", "mine.json", "--sweep", "sw")
    assert r.code == 3, r.err
    assert "best.toml" in r.err and len(r.err.strip().splitlines()) == 1
