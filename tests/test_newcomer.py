"""What a new user trips over first, each pinned where it can come back: running ``tradekit``
after ``make demo``, help text, a negative stop-loss, gaps in ``data check``, a control with no
loop running, ``deploy --rollback`` with nothing to roll back, ``train``'s discarded partial
run, and log lines inside the progress bar."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, Result
from tests.test_check import candle, frame, write_raw

RunCli = Callable[..., Result]
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def test_the_first_screen_says_how_to_run_tradekit() -> None:
    first = (ROOT / "README.md").read_text().split("\n---\n")[0]
    assert ". .venv/bin/activate" in first and ".venv/bin/tradekit" in first
    # Exactly two set-up commands for a fresh machine.
    block = first.split("```sh\n")[1].split("```")[0]
    assert [ln.split("#")[0].strip() for ln in block.splitlines()] == ["make demo", "make test"]
    demo = (ROOT / "Makefile").read_text().split("\ndemo:")[1].split("\n\n")[0]
    assert "$(VENV)/bin/activate" in demo  # the demo's last line says it too


# -- help ----------------------------------------------------------------------------------------


def _helps() -> Iterator[tuple[str, str]]:
    """(command path, help text) of every command and group, 100 columns wide."""
    import typer

    from tradekit.cli.main import app

    root = typer.main.get_command(app)

    def walk(cmd: object, path: list[str], parent: object) -> Iterator[tuple[str, str]]:
        ctx = typer.Context(cmd, info_name=path[-1], parent=parent, terminal_width=100)  # type: ignore[arg-type]
        yield " ".join(path), cmd.get_help(ctx)  # type: ignore[attr-defined]
        for name, sub in sorted(getattr(cmd, "commands", {}).items()):
            yield from walk(sub, [*path, name], ctx)

    yield from walk(root, ["tradekit"], None)


def test_help_names_values_as_a_unix_tool_does() -> None:
    seen = 0
    for path, text in _helps():
        seen += 1
        for line in text.splitlines():  # a type in the name column: "FILE <str>", "--n <int>"
            assert not re.search(r"<[a-z][a-z\[\] ]*>(\s{2,}|$)", line), f"{path}: {line}"
        assert "{" not in text and "...]..." not in text, f"{path}:\n{text}"
        usage = text.splitlines()[0]
        assert not re.search(r"\w\.\.\.\.\.\.", usage), usage
        if "Commands:" in text:  # each command's first sentence, whole
            listing = text.split("Commands:")[1]
            assert not re.search(r"\w\.\.\.$", listing, re.M), f"{path}: cut short:\n{listing}"
    assert seen > 25
    fetch = dict(_helps())["tradekit fetch"]
    assert fetch.startswith("Usage: tradekit fetch [OPTIONS] [SYMBOL]...\n")
    train = dict(_helps())["tradekit train"]
    assert "Usage: tradekit train [OPTIONS] FEATURES\n" in train
    assert "--train-window N " in train and "--seed N " in train


# -- config set with a negative number -------------------------------------------------------


@pytest.mark.parametrize("args", [["-0.05"], ["--", "-0.05"]])
def test_a_negative_stoploss_is_explained(run_cli: RunCli, tmp_path: Path, args: list[str]) -> None:
    cfg = tmp_path / "t.toml"
    r = run_cli("-c", str(cfg), "config", "set", "policy.stoploss", *args)
    assert r.code == 3, r.err
    line = r.err.strip().splitlines()[-1]
    assert "No such option" not in r.err
    assert "[policy] stoploss: must be a positive fraction" in line
    assert line.endswith("got -0.05: for a stop 5% below the price, write 0.05")
    assert not cfg.exists()  # nothing written
    assert run_cli("-c", str(cfg), "config", "set", "policy.stoploss", "0.05").code == 0
    assert "stoploss = 0.05" in cfg.read_text()


# -- data check ----------------------------------------------------------------------------------


def test_gaps_point_to_fill_gaps(run_cli: RunCli) -> None:
    b = "BTC/USD"
    write_raw("gap.parquet", frame([candle(b, 0), candle(b, 1), candle(b, 3)]))
    r = run_cli("data", "check", "gap.parquet")
    assert r.code == 1
    assert r.err.strip().splitlines()[-1] == (
        "tradekit: error: gap.parquet: 1 problem(s): gaps (fetch or data import with "
        "--fill-gaps fills intervals without trades with flat zero-volume candles)"
    )
    write_raw("dup.parquet", frame([candle(b, 0), candle(b, 1), candle(b, 1)]))
    r = run_cli("data", "check", "dup.parquet")
    assert r.code == 1 and "--fill-gaps" not in r.err  # only where it helps


# -- controls with no loop running -------------------------------------------------------------


def test_pause_without_a_loop_is_pending_and_says_so(run_cli: RunCli, tmp_path: Path) -> None:
    from tradekit.ledger import Ledger

    db = tmp_path / "state" / "l.db"
    Ledger(db).close()
    r = run_cli("pause", "--state", str(db))
    assert r.code == 0
    assert r.err.startswith("pause: queued, not applied: no loop is running"), r.err
    s = json.loads(run_cli("status", "--state", str(db), "--json").out)
    assert s["paused"] is False and s["state"] == "stopped, pause pending"
    assert [c["command"] for c in s["pending_controls"]] == ["pause"]
    text = run_cli("status", "--state", str(db)).out
    assert "requested  pause at" in text and "no loop is running" in text


# -- deploy --rollback with nothing to roll back -----------------------------------------------


def test_nothing_to_roll_back_is_not_a_usage_error(run_cli: RunCli, tmp_path: Path) -> None:
    env = {"TRADEKIT_DEPLOY__PATH": str(tmp_path / "releases")}
    r = run_cli("deploy", "--rollback", "--host", "local", env=env)
    assert r.code == 1, r.err
    assert r.err.strip().endswith("current does not exist: nothing to roll back")


# -- train: folds counted one way, a discarded partial run named ---------------------------------


def test_train_counts_folds_from_one_and_names_a_discarded_partial(
    run_cli: RunCli, tmp_path: Path
) -> None:
    cfg = tmp_path / "m.toml"
    cfg.write_text(
        '[exchange]\nsymbols = ["BTC/USD"]\n'
        "[model]\nn_estimators = 5\ntrain_window = 400\ntest_window = 150\nstep = 150\n"
    )
    ohlcv, feats = str(tmp_path / "o.parquet"), str(tmp_path / "f.parquet")
    for argv in (
        ["fetch", "BTC/USD", "--exchange", "sample", "-t", "1h", "--since", "2019-01-01",
         "--until", "2019-05-01", "-o", ohlcv],
        ["featurize", ohlcv, "-o", feats],
    ):  # fmt: skip
        assert run_cli("-c", str(cfg), *argv).code == 0
    partial = tmp_path / "model.partial"
    (partial / "folds").mkdir(parents=True)
    (partial / "run.json").write_text("{}\n")  # what an interrupted run leaves
    r = run_cli("-c", str(cfg), "train", feats, "-o", str(tmp_path / "model"))
    assert r.code == 0, r.err
    assert f"{partial} holds an interrupted run's finished folds" in r.err
    assert "`train --resume` continues such a run" in r.err
    manifest = json.loads((tmp_path / "model" / "manifest.json").read_text())
    n = len(manifest["walk_forward"]["folds"])
    assert n >= 2
    assert f"fold 1/{n}:" in r.err and f"fold {n}/{n}:" in r.err
    table_folds = re.findall(r"^│ (\d+|all) +│", r.err, re.M)
    assert table_folds == [*(str(i) for i in range(1, n + 1)), "all"]


# -- the progress bar on a terminal ------------------------------------------------------------


class _Terminal(io.StringIO):
    """A stderr that says it is a terminal (what a person's shell gives)."""

    def isatty(self) -> bool:
        return True


def test_log_lines_print_above_the_progress_bar_with_an_eta(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tradekit import log as tklog
    from tradekit.cli import output as out

    term = _Terminal()
    monkeypatch.setattr("sys.stderr", term)
    monkeypatch.setenv("COLUMNS", "100")
    tklog.setup("info")
    try:
        with out.progress("train lightgbm", 4) as advance:
            for i in range(1, 5):
                logging.getLogger("tradekit.models").info("fold %d/4: done", i)
                advance()
    finally:
        tklog.setup("info")  # back to the real stderr for the tests after this one
    text = ANSI.sub("", term.getvalue())
    lines = [ln for part in text.split("\n") for ln in part.split("\r") if ln.strip()]
    logged = [ln for ln in lines if "tradekit: info: fold" in ln]
    assert len(logged) == 4
    assert all(ln.startswith("tradekit: info: fold") for ln in logged), logged  # not glued
    bar = [ln for ln in lines if ln.startswith("train lightgbm")]
    assert bar and "ETA" in bar[-1] and "100%" in bar[-1]
    assert "/4" not in bar[-1]  # a percentage: the bar does not count folds a third way
