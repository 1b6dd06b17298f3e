"""Candidate models paper-trading beside the live one (tradekit/live/candidates.py) and the
evidence against live (tradekit/evidence.py).

- Each candidate's paper account equals a separate ``run --replay`` of that candidate's model
  (``featurize`` + ``predict`` + the replay, real CLI) on the same candles: same trades, same
  equity. Driven a candle at a time through the real ``Candidates`` with real models, one
  sharing the live model's features and one on a feature set of its own.
- In the real loop (``tradekit run`` against the local Kraken server): a candidate that fails
  to load, or whose candle fails, is an event and the live loop goes on; a removed one's
  ledger is retired.
- The statistics against independent computations (scipy is not a dependency: the t
  distribution is checked against exact values), and ``tradekit candidates`` on two ledgers.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tradekit import evidence

HOUR = 3_600_000
SYMBOLS = ["BTC/USD", "ETH/USD"]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny LightGBM models on the offline sample: a and b on feature set "minimal" (the same
    features), c on "minimal" with other periods (features of its own)."""
    from tradekit.cli.main import main

    d = tmp_path_factory.mktemp("cand-models")
    o = d / "ohlcv.parquet"
    wf = ["--train-window", "300", "--test-window", "100", "--step", "100", "--threads", "1"]
    out: dict[str, Path] = {"ohlcv": o}
    with pytest.MonkeyPatch.context() as mp:
        for var in [v for v in os.environ if v.startswith("TRADEKIT_")]:
            mp.delenv(var)
        fetch = ["fetch", "--exchange", "sample", *SYMBOLS, "-t", "1h", "--since", "2019-01-01",
                 "--until", "2019-02-20", "-o", str(o)]  # fmt: skip
        assert main(fetch) == 0
        for name, trees, periods in (("a", "20", None), ("b", "10", None), ("c", "12", "5,15")):
            mp.setenv("TRADEKIT_MODEL__N_ESTIMATORS", trees)
            if periods:
                mp.setenv("TRADEKIT_FEATURES__PERIODS", periods)
            f = d / f"{name}.features.parquet"
            assert main(["featurize", str(o), "--feature-set", "minimal", "-o", str(f)]) == 0
            assert main(["train", str(f), "-o", str(d / name), *wf]) == 0
            out[name] = d / name
            mp.delenv("TRADEKIT_FEATURES__PERIODS", raising=False)
    return out


def write_config(path: Path, tmp: Path, **run: str) -> Path:
    """Thresholds that trade often, a stop-loss, and the paper balance = the replay's."""
    lines = [
        "[exchange]", f"symbols = {json.dumps(SYMBOLS)}", 'timeframe = "1h"',
        "[policy]", "entry_threshold = 0.012", "exit_threshold = 0.009", "stoploss = 0.02",
        "[backtest]", "starting_balance = 5000.0", "fee = 0.0026", "slippage = 0.0005",
        "[run]", "paper_balance = 5000.0", f'state = "{tmp / "state" / "live.db"}"',
        f'model = "{tmp / "opt" / "current"}"',
        *(f'{k} = "{v}"' for k, v in run.items()),
    ]  # fmt: skip
    path.write_text("\n".join(lines) + "\n")
    return path


def candles(ohlcv: Path) -> tuple[list[int], dict[str, np.ndarray]]:
    from tradekit.contracts import read_table

    df, _ = read_table(ohlcv, None)
    rows = {}
    for s in SYMBOLS:
        g = df[df["symbol"] == s].sort_values("timestamp")
        ts = g["timestamp"].dt.as_unit("ms").astype("int64").to_numpy(dtype=np.float64)
        rows[s] = np.column_stack([ts, g[["open", "high", "low", "close", "volume"]].to_numpy()])
    ts = sorted(set().union(*({int(x) for x in r[:, 0]} for r in rows.values())))
    return ts, rows


def drive(cfg: Any, cand_dir: Path, live_dir: Path, ohlcv: Path, start: int, end: int) -> list:
    """The loop's candidate path, a candle at a time: the live model predicts first, then
    the candidates decide on the same history (as ``Runner._cycle``)."""
    from tradekit.live import startup
    from tradekit.live.candidates import Candidates
    from tradekit.live.history import History
    from tradekit.live.signals import ModelSignals

    ts, rows = candles(ohlcv)
    live = ModelSignals(startup.load_model(cfg, live_dir), SYMBOLS, "1h")
    hist = History(list(SYMBOLS), HOUR, 3)
    notes: list[tuple[Any, ...]] = []
    cands = Candidates(cfg, directory=cand_dir, state=Path(cfg.run.state), tf_ms=HOUR,
                       note=lambda *a, **kw: notes.append(a))  # fmt: skip
    cands.scan(live, hist)
    for s in SYMBOLS:
        hist.add(s, rows[s][rows[s][:, 0] < ts[start]])
    at = {s: {int(r[0]): r for r in rows[s]} for s in SYMBOLS}

    def ohlc(m: int) -> tuple[np.ndarray, ...]:
        """As the loop's: NaN for a symbol without a candle at ``m`` (the sample has gaps)."""
        a = np.array([at[s][m][1:5] if m in at[s] else [np.nan] * 4 for s in SYMBOLS])
        return a[:, 0], a[:, 1], a[:, 2], a[:, 3]

    try:
        for i in range(start, end + 1):
            t = ts[i]
            for s in SYMBOLS:
                if t in at[s]:
                    hist.add(s, at[s][t][None, :])
            live.predict(t, hist)
            cands.cycle(t, ohlc, ohlc(ts[i + 1])[0], hist, live, lambda: None)
    finally:
        cands.close()
    return notes


def install(cand_dir: Path, **targets: Path) -> None:
    cand_dir.mkdir(parents=True, exist_ok=True)
    for name, target in targets.items():
        os.symlink(target, cand_dir / name)


def _rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    con = sqlite3.connect(db)
    try:
        return [tuple(r) for r in con.execute(sql)]
    finally:
        con.close()


TRADES = ("SELECT symbol, entry_ms, exit_ms, qty, entry_price, exit_price, fees, pnl, "
          "exit_reason FROM trades ORDER BY exit_ms, symbol, id")  # fmt: skip


def test_each_candidate_equals_a_replay_of_its_model(
    models: dict[str, Path], tmp_path: Path, run_cli: Any
) -> None:
    from tradekit.config import load_config
    from tradekit.contracts import PREDICTIONS, read_table, write_ohlcv, write_table

    cfg_path = write_config(tmp_path / "t.toml", tmp_path)
    cfg = load_config(cfg_path, environ={})
    cand_dir = tmp_path / "opt" / "candidates"
    install(cand_dir, b=models["b"], c=models["c"])
    ts, _ = candles(models["ohlcv"])
    start, end = 400, len(ts) - 2
    notes = drive(cfg, cand_dir, models["a"], models["ohlcv"], start, end)
    started = [n[2] for n in notes if "paper-trading" in n[2]]
    assert len(started) == 2 and "(features shared)" in started[0] and "shared" not in started[1]
    assert [n for n in notes if n[0] != "info"] == []

    df, _ = read_table(models["ohlcv"], None)
    ms = df["timestamp"].dt.as_unit("ms").astype("int64")
    cut = tmp_path / "cut.parquet"
    write_ohlcv(df[(ms >= ts[start]) & (ms <= ts[end])].reset_index(drop=True), cut,
                {"exchange": "sample", "timeframe": "1h"})  # fmt: skip
    for name, periods in (("b", None), ("c", "5,15")):
        env = {"TRADEKIT_FEATURES__PERIODS": periods} if periods else {}
        feats, preds = tmp_path / f"{name}.f.parquet", tmp_path / f"{name}.p.parquet"
        r = run_cli("-c", str(cfg_path), "featurize", str(models["ohlcv"]), "--feature-set",
                    "minimal", "-o", str(feats), env=env)  # fmt: skip
        assert r.code == 0, r.err
        r = run_cli("-c", str(cfg_path), "predict", str(models[name]), str(feats), "-o",
                    str(preds))  # fmt: skip
        assert r.code == 0, r.err
        pdf, pmeta = read_table(preds, PREDICTIONS)
        pms = pdf["timestamp"].dt.as_unit("ms").astype("int64")
        window = tmp_path / f"{name}.window.parquet"
        write_table(pdf[(pms >= ts[start]) & (pms <= ts[end])].reset_index(drop=True), window,
                    PREDICTIONS, pmeta)  # fmt: skip
        replayed = tmp_path / f"{name}.replay.db"
        r = run_cli("-c", str(cfg_path), "run", "--replay", str(cut), "-p", str(window),
                    "--state", str(replayed))  # fmt: skip
        assert r.code == 0, r.err
        paper = evidence.ledger_path(cfg.run.state, name)
        want, got = _rows(replayed, TRADES), _rows(paper, TRADES)
        assert len(want) >= 10, f"{name}: the fixture must trade ({len(want)} trades)"
        diff = [(i, w, g) for i, (w, g) in enumerate(zip(want, got, strict=False)) if w != g]
        assert len(got) == len(want) and not diff, (name, len(got), len(want), diff[:2])
        eq = "SELECT candle_ms, equity, cash, exposure FROM equity ORDER BY candle_ms"
        weq, geq = _rows(replayed, eq), _rows(paper, eq)
        diff = [(w, g) for w, g in zip(weq, geq, strict=False) if w != g]
        assert len(weq) == len(geq) and not diff, (name, len(weq), len(geq), diff[:2])
        # Every decision too (the candidate also opened the candle after the last one).
        dec = (
            "SELECT candle_ms, symbol, phase, action, reason, prediction, price, qty FROM "
            f"decisions WHERE candle_ms <= {ts[end]} ORDER BY candle_ms, phase, symbol, id"
        )
        assert _rows(paper, dec) == _rows(replayed, dec), name
        (mode,) = _rows(paper, "SELECT value FROM meta WHERE key = 'mode'")
        assert mode == ("candidate",)
    # The two candidates traded differently (different models), so the check has teeth.
    b, c = (_rows(evidence.ledger_path(cfg.run.state, n), TRADES) for n in "bc")
    assert b != c


def test_a_candidate_resumes_from_its_ledger_as_if_never_stopped(
    models: dict[str, Path], tmp_path: Path
) -> None:
    """Stopping the loop (closing the candidates) and starting again continues each
    candidate's account from its ledger: the same trades as one uninterrupted run."""
    from tradekit.config import load_config

    start, mid, end = 400, 520, 650
    ledgers = {}
    for how in ("once", "split"):
        d = tmp_path / how
        cfg = load_config(write_config(d.with_suffix(".toml"), d), environ={})
        install(d / "opt" / "candidates", b=models["b"])
        if how == "once":
            drive(cfg, d / "opt" / "candidates", models["a"], models["ohlcv"], start, end)
        else:
            drive(cfg, d / "opt" / "candidates", models["a"], models["ohlcv"], start, mid)
            drive(cfg, d / "opt" / "candidates", models["a"], models["ohlcv"], mid + 1, end)
        ledgers[how] = evidence.ledger_path(cfg.run.state, "b")
    assert _rows(ledgers["split"], TRADES) == _rows(ledgers["once"], TRADES)
    assert len(_rows(ledgers["once"], TRADES)) >= 5


def test_a_replaced_candidate_starts_a_fresh_account(
    models: dict[str, Path], tmp_path: Path
) -> None:
    from tradekit.config import load_config

    cfg = load_config(write_config(tmp_path / "t.toml", tmp_path), environ={})
    cand_dir = tmp_path / "opt" / "candidates"
    install(cand_dir, x=models["b"])
    drive(cfg, cand_dir, models["a"], models["ohlcv"], 400, 450)
    os.unlink(cand_dir / "x")
    os.symlink(models["c"], cand_dir / "x")
    notes = drive(cfg, cand_dir, models["a"], models["ohlcv"], 451, 460)
    assert any("paper-trading" in n[2] for n in notes)
    (retired,) = (Path(cfg.run.state).parent / "candidates" / "retired").iterdir()
    assert retired.name == "x-b.db"  # the release it traded (here the model dir's name)
    eq = _rows(evidence.ledger_path(cfg.run.state, "x"), "SELECT min(candle_ms) FROM equity")
    ts, _ = candles(models["ohlcv"])
    assert eq == [(ts[451],)]


# -- statistics ----------------------------------------------------------------------------------
def test_t_distribution_matches_exact_values() -> None:
    # df = 1 is Cauchy: P(|T| >= t) = 1 - 2 atan(t) / pi; df = 2: 1 - t / sqrt(2 + t^2).
    for t in (0.1, 0.5, 1.0, 2.0, 7.5):
        assert evidence.t_sf_two_sided(t, 1) == pytest.approx(1 - 2 * math.atan(t) / math.pi)
        assert evidence.t_sf_two_sided(t, 2) == pytest.approx(1 - t / math.sqrt(2 + t * t))
    # Large df tends to the normal: P(|Z| >= 1.96) = 0.05.
    assert evidence.t_sf_two_sided(1.959964, 100_000) == pytest.approx(0.05, abs=1e-4)
    # Tables: t(0.975, 10) = 2.228.
    assert evidence.t_sf_two_sided(2.228139, 10) == pytest.approx(0.05, abs=1e-6)


def test_sign_test_and_psr() -> None:
    s = evidence.sign_test([0.01] * 9 + [-0.01] + [0.0])
    assert (s["wins"], s["losses"], s["ties"]) == (9, 1, 1)
    assert s["p"] == pytest.approx(2 * (1 + 10) / 1024)
    assert evidence.sign_test([0.01, -0.01])["p"] == 1.0
    rng = np.random.default_rng(1)
    better = list(rng.normal(0.002, 0.01, 200))
    worse = list(rng.normal(-0.002, 0.01, 200))
    pb, pw = evidence.psr_of(better), evidence.psr_of(worse)
    assert pb is not None and pw is not None and pb > 0.95 and pw < 0.05
    t = evidence.paired_t(better)
    mean, sd = float(np.mean(better)), float(np.std(better, ddof=1))
    assert t["t"] == pytest.approx(mean / sd * math.sqrt(200))


def test_compare_aligns_on_common_candles_and_days() -> None:
    day = 86_400_000
    t0 = 1_700_000_000_000 - 1_700_000_000_000 % day
    live = [(t0 + i * HOUR, 1000.0 + i) for i in range(72)]  # 3 days, rising by 1 an hour
    cand = [(t0 + i * HOUR, 1000.0 + 2 * i) for i in range(24, 72)]  # 2 days, twice as fast
    exits = [t0 + 30 * HOUR, t0 + 40 * HOUR, t0 + 2 * HOUR]  # the last before the span
    cmp = evidence.compare((live, None, exits), (cand, None, exits[:2] * 2 + [t0 + 99 * HOUR]))
    assert cmp["candles"] == 48 and cmp["days"] == 2
    assert cmp["live"]["return"] == pytest.approx(1071 / 1024 - 1)
    assert cmp["candidate"]["return"] == pytest.approx(1142 / 1048 - 1)
    assert cmp["live"]["max_drawdown"] == 0.0
    assert (cmp["live"]["trades"], cmp["candidate"]["trades"]) == (2, 4)
    assert cmp["daily"]["sign_test"]["wins"] == 2
    assert "2 days" in evidence.verdict(cmp)


# -- in the real loop ----------------------------------------------------------------------------
def _count(db: Path, sql: str) -> int:
    try:
        return int(_rows(db, sql)[0][0])
    except sqlite3.OperationalError:
        return 0  # not created yet


def test_candidates_in_the_real_loop_never_disturb_it(
    kraken: Any, kraken_env: dict[str, str], tmp_path: Path, models: dict[str, Path]
) -> None:
    """`tradekit run` with the live model a and candidates b (same features), c (its own) and
    one that cannot load: the live loop trades every candle whatever the candidates do. A
    candidate's ledger locked by another process fails its candle after the live decisions
    were committed; it is an event, and the next candle it trades again from its ledger. A
    removed candidate's ledger is retired."""
    from tests.test_run import FIRST, Loop, _deploy, _env, _version

    _deploy(models["a"], tmp_path / "models" / "current")
    cand_dir = tmp_path / "models" / "candidates"  # the default: beside [run] model
    install(cand_dir, b=models["b"], c=models["c"])
    (cand_dir / "broken").mkdir()
    (cand_dir / "broken" / "manifest.json").write_text("{ not a manifest")
    live = tmp_path / "state" / "ledger.db"
    led = {n: evidence.ledger_path(live, n) for n in "bc"}
    kraken.state.now_ms = FIRST + 2 * HOUR - 100
    env = _env(kraken_env, tmp_path)
    loop = Loop(tmp_path, env)

    def n_candles(db: Path) -> int:
        return _count(db, "SELECT count(*) FROM equity")

    def events() -> list[str]:
        return [r[0] for r in _rows(live, "SELECT message FROM events WHERE kind = 'candidate' "
                                    "ORDER BY id")]  # fmt: skip

    try:
        loop.wait_for("the first candle", lambda: [n_candles(x) for x in (live, *led.values())]
                      == [1, 1, 1])  # fmt: skip
        ev = events()
        assert any(e.startswith("candidate broken not loaded:") for e in ev), ev
        assert any(e.startswith("candidate b paper-trading") and "shared" in e for e in ev)
        for n in "bc":
            assert _rows(led[n], "SELECT DISTINCT model_version FROM decisions") == [
                (_version(models[n]),)
            ]

        # Another process holds b's ledger: b's candle fails (after its busy timeout), the
        # live candle was committed before it, c trades on.
        holder = sqlite3.connect(led["b"], isolation_level=None, timeout=30)
        holder.execute("BEGIN IMMEDIATE")
        try:
            kraken.state.now_ms += HOUR
            loop.wait_for("the live second candle", lambda: n_candles(live) == 2)
            loop.wait_for("b's failure", lambda: any("candidate b: candle" in e
                                                     for e in events()), timeout=60)  # fmt: skip
            assert n_candles(led["c"]) == 2 and n_candles(led["b"]) == 1
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        (fail,) = [e for e in events() if "candidate b: candle" in e]
        assert "database is locked" in fail and "the live loop goes on" in fail

        os.unlink(cand_dir / "c")
        kraken.state.now_ms += HOUR
        loop.wait_for("the third candle", lambda: n_candles(live) == 3 and n_candles(led["b"]) == 2)
        loop.wait_for("c retired", lambda: any("candidate c removed" in e for e in events()))
        assert "candidate b trading again" in events()
        assert not led["c"].exists()
        assert (led["c"].parent / "retired" / "c-c.db").is_file()
        assert loop.proc.poll() is None
    finally:
        loop.stop()
    # b missed candle 2 while locked: managed as a missed candle, no decision from it.
    closes = _rows(led["b"], "SELECT DISTINCT candle_ms FROM decisions WHERE phase = 'close' "
                   "ORDER BY candle_ms")  # fmt: skip
    assert [c[0] for c in closes] == [FIRST, FIRST + 2 * HOUR]
    assert "Traceback" not in loop.output()


def test_candidates_report_cli_dashboard_and_review_agree(
    models: dict[str, Path], tmp_path: Path, run_cli: Any
) -> None:
    """Two candidates paper-traded beside a "live" account (a replay of model a on the same
    candles): `tradekit candidates --json`, the dashboard's list and review.json's field are
    one function's answer, and its figures are the ledgers' own."""
    from tradekit.config import load_config
    from tradekit.contracts import PREDICTIONS, read_table, write_ohlcv, write_table
    from tradekit.review import build_review
    from tradekit.serve import files

    cfg_path = write_config(tmp_path / "t.toml", tmp_path)
    cfg = load_config(cfg_path, environ={})
    cand_dir = tmp_path / "opt" / "candidates"
    install(cand_dir, b=models["b"], c=models["c"])
    ts, _ = candles(models["ohlcv"])
    start, end = 400, 700
    drive(cfg, cand_dir, models["a"], models["ohlcv"], start, end)
    df, _ = read_table(models["ohlcv"], None)
    ms = df["timestamp"].dt.as_unit("ms").astype("int64")
    cut = tmp_path / "cut.parquet"
    write_ohlcv(df[(ms >= ts[start]) & (ms <= ts[end])].reset_index(drop=True), cut,
                {"exchange": "sample", "timeframe": "1h"})  # fmt: skip
    feats, preds = tmp_path / "a.f.parquet", tmp_path / "a.p.parquet"
    assert run_cli("-c", str(cfg_path), "featurize", str(models["ohlcv"]), "--feature-set",
                   "minimal", "-o", str(feats)).code == 0  # fmt: skip
    assert run_cli("-c", str(cfg_path), "predict", str(models["a"]), str(feats), "-o",
                   str(preds)).code == 0  # fmt: skip
    pdf, pmeta = read_table(preds, PREDICTIONS)
    pms = pdf["timestamp"].dt.as_unit("ms").astype("int64")
    write_table(pdf[(pms >= ts[start]) & (pms <= ts[end])].reset_index(drop=True), preds,
                PREDICTIONS, pmeta)  # fmt: skip
    live = Path(cfg.run.state)
    r = run_cli("-c", str(cfg_path), "run", "--replay", str(cut), "-p", str(preds), "--state",
                str(live))  # fmt: skip
    assert r.code == 0, r.err

    r = run_cli("-c", str(cfg_path), "candidates", "--json", "--dir", str(cand_dir))
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    assert doc["schema"] == "candidates/1" and doc["state"] == str(live)
    got = {c["name"]: c for c in doc["candidates"]}
    assert sorted(got) == ["b", "c"]
    days = len({t - t % 86_400_000 for t in ts[start : end + 1]})
    for name, c in got.items():
        paper = evidence.ledger_path(live, name)
        cmp = c["comparison"]
        assert c["since_ms"] == ts[start] and c["release"] == name
        assert cmp["candles"] == end - start + 1 and cmp["days"] == days
        eq = [e for (e,) in _rows(paper, "SELECT equity FROM equity ORDER BY candle_ms")]
        leq = [e for (e,) in _rows(live, "SELECT equity FROM equity ORDER BY candle_ms")]
        assert cmp["candidate"]["return"] == pytest.approx(eq[-1] / eq[0] - 1)
        assert cmp["live"]["return"] == pytest.approx(leq[-1] / leq[0] - 1)
        peak = np.maximum.accumulate(eq)
        assert cmp["candidate"]["max_drawdown"] == pytest.approx(float(np.max(1 - eq / peak)))
        span = f"SELECT id FROM trades WHERE exit_ms BETWEEN {ts[start]} AND {ts[end]}"
        assert cmp["candidate"]["trades"] == len(_rows(paper, span)) > 0
        assert cmp["live"]["trades"] == len(_rows(live, span)) > 0
        s = cmp["daily"]["sign_test"]
        assert s["wins"] + s["losses"] + s["ties"] == days == cmp["daily"]["days"]
        assert c["evidence"].startswith(f"{days} days, return ")
        assert c["receipt"]["present"] is False and "verdict" in c["receipt"]["problem"]
    # The dashboard and the review draw the same list.
    assert (
        json.loads(json.dumps(files.candidates(models["a"], live, cand_dir))) == doc["candidates"]
    )
    review = build_review(state=live, model_dir=models["a"], candidates=cand_dir)
    assert json.loads(json.dumps(review["candidates"], default=str)) == doc["candidates"]
    # For a person: a table and one line of evidence each.
    r = run_cli("-c", str(cfg_path), "candidates", "--dir", str(cand_dir))
    assert r.code == 0 and r.out == "" and "b: " in r.err and "c: " in r.err
