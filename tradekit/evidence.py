"""Candidate models against the live one: where they are, and the evidence that one is better.

A candidate is a model dir installed beside the live model (``deploy MODEL_DIR --candidate
NAME``: ``<deploy path>/candidates/NAME -> ../releases/<id>``). ``run`` paper-trades each in
its own ledger, ``state/candidates/NAME.db`` beside the live ledger (same schema, mode
``candidate``; :mod:`tradekit.live.candidates`). This module reads both ledgers and says, for
each candidate over the span both traded: days, trades, return, Sortino, maximum drawdown,
and a paired comparison of their daily returns (a t-test, a sign test, and the probabilistic
Sharpe ratio of the daily differences). ``tradekit candidates``, the dashboard
(``/api/v1/candidates``) and ``review.json`` all draw it from :func:`candidates_report`.

Stdlib only (the statistics of a few hundred days need no numpy), so ``serve`` and ``review``
stay light.
"""

from __future__ import annotations

import itertools
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tradekit.errors import InputError, TradekitError, UsageError

if TYPE_CHECKING:
    from tradekit.ledger import LedgerView

SCHEMA = "candidates/1"
MAX_CANDIDATES = 3
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")
NAME_RULE = "1 to 32 letters, digits, '-' or '_', starting with a letter or digit"
DAY_MS = 86_400_000
LEDGER_DIR = "candidates"  # beside the live ledger: state/candidates/NAME.db
RETIRED = "retired"  # state/candidates/retired/NAME-<release>.db: a replaced or removed one


def check_name(name: str) -> str:
    if not NAME_RE.match(name):
        raise UsageError(f"candidate name {name!r}: use {NAME_RULE}")
    return name


def directory(run_candidates: str, run_model: str) -> Path:
    """``[run] candidates``, or ``candidates/`` in the directory that holds ``[run] model``
    (``/opt/tradekit/current`` -> ``/opt/tradekit/candidates``)."""
    if run_candidates:
        return Path(run_candidates)
    return Path(os.path.abspath(run_model)).parent / "candidates"


def ledger_path(state: str | Path, name: str) -> Path:
    return Path(state).parent / LEDGER_DIR / f"{name}.db"


@dataclass(frozen=True)
class Installed:
    name: str
    link: Path  # <dir>/NAME
    target: Path  # the release (or model dir) it points at, resolved
    release: str  # the target's directory name (a release id on the Pi)


def installed(cand_dir: Path) -> list[Installed]:
    """The candidates in ``cand_dir`` (links or directories with a valid name), by name;
    [] when the directory does not exist."""
    try:
        names = sorted(os.listdir(cand_dir))
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as e:
        raise InputError(f"{cand_dir}: cannot list candidates: {e.strerror}") from None
    out = []
    for n in names:
        if not NAME_RE.match(n):
            continue  # .NAME.tmp of a switch in progress, or a stranger's file
        link = cand_dir / n
        target = Path(os.path.realpath(link))
        if target.is_dir():
            out.append(Installed(n, link, target, target.name))
    return out


# -- statistics (stdlib) -----------------------------------------------------------------------
def _betacf(a: float, b: float, x: float) -> float:
    """The continued fraction of the regularized incomplete beta function (Lentz)."""
    tiny, qab, qap, qam = 1e-300, a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        for aa in (m * (b - m) * x / ((qam + m2) * (a + m2)),
                   -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):  # fmt: skip
            d = 1.0 + aa * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + aa / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-14:
            break
    return h


def _betai(a: float, b: float, x: float) -> float:
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    lbt = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
    bt = math.exp(lbt + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return bt * _betacf(a, b, x) / a
    return 1.0 - bt * _betacf(b, a, 1.0 - x) / b


def t_sf_two_sided(t: float, df: int) -> float:
    """P(|T| >= |t|) for Student's t with ``df`` degrees of freedom."""
    return _betai(df / 2.0, 0.5, df / (df + t * t))


def paired_t(diffs: list[float]) -> dict[str, float | None]:
    """One-sample t-test of the daily differences against 0 (two-sided p)."""
    n = len(diffs)
    if n < 2:
        return {"t": None, "p": None}
    mean = sum(diffs) / n
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1))
    if not sd > 0.0:
        return {"t": None, "p": None}
    t = mean / (sd / math.sqrt(n))
    return {"t": t, "p": t_sf_two_sided(t, n - 1)}


def sign_test(diffs: list[float]) -> dict[str, int | float | None]:
    """Days the candidate beat live, lost, tied; exact two-sided binomial p over the untied."""
    wins = sum(1 for d in diffs if d > 0)
    losses = sum(1 for d in diffs if d < 0)
    n = wins + losses
    p = None
    if n:
        k = min(wins, losses)
        p = min(1.0, 2.0 * sum(math.comb(n, i) for i in range(k + 1)) / 2.0**n)
    return {"wins": wins, "losses": losses, "ties": len(diffs) - n, "p": p}


def psr_of(diffs: list[float]) -> float | None:
    """P(the true Sharpe ratio of the daily differences > 0) (``selection.psr``)."""
    from tradekit.selection import psr

    n = len(diffs)
    if n < 3:
        return None
    mean = sum(diffs) / n
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1))
    m2 = sum((d - mean) ** 2 for d in diffs) / n
    if not (sd > 0.0 and m2 > 0.0):
        return None
    skew = sum((d - mean) ** 3 for d in diffs) / n / m2**1.5
    kurt = sum((d - mean) ** 4 for d in diffs) / n / m2**2
    return psr(mean / sd, n, skew, kurt)


def daily_closes(equity: list[tuple[int, float]]) -> dict[int, float]:
    """The last equity of each UTC day (``day_ms`` -> equity)."""
    out: dict[int, float] = {}
    for ms, eq in equity:
        out[ms - ms % DAY_MS] = eq
    return out


def account(equity: list[tuple[int, float]], start_equity: float, trades: int) -> dict[str, Any]:
    """One account over an equity series (one row per candle) from ``start_equity`` (the
    equity just before it): closed ``trades``, return, Sortino and maximum drawdown as the
    backtest report computes them (per-candle returns, annualised by the candles in 365
    days; the drawdown from a running peak that starts at ``start_equity``)."""
    out: dict[str, Any] = {"trades": trades, "return": None, "sortino": None,
                           "max_drawdown": None, "equity": None}  # fmt: skip
    if not equity or not start_equity > 0:
        return out
    peak, mdd, prev, rets = start_equity, 0.0, start_equity, []
    for _, eq in equity:
        peak = max(peak, eq)
        mdd = max(mdd, 1.0 - eq / peak) if peak > 0 else mdd
        rets.append(eq / prev - 1.0 if prev else 0.0)
        prev = eq
    steps = [b[0] - a[0] for a, b in itertools.pairwise(equity) if b[0] > a[0]]
    if len(rets) >= 2 and steps:
        per_year = 365 * DAY_MS / min(steps)
        mean = sum(rets) / len(rets)
        down = math.sqrt(sum(min(r, 0.0) ** 2 for r in rets) / len(rets))
        out["sortino"] = mean / down * math.sqrt(per_year) if down > 0 else None
    out["return"] = equity[-1][1] / start_equity - 1.0
    out["max_drawdown"] = mdd
    out["equity"] = equity[-1][1]
    return out


def _daily_returns(equity: list[tuple[int, float]], start: float) -> dict[int, float]:
    """Each UTC day's return, from the previous day's last equity (``start`` before the
    first)."""
    out: dict[int, float] = {}
    prev = start
    days = daily_closes(equity)
    for day in sorted(days):
        out[day] = days[day] / prev - 1.0 if prev else 0.0
        prev = days[day]
    return out


Side = tuple[list[tuple[int, float]], float | None, list[int]]


def compare(live: Side, cand: Side) -> dict[str, Any]:
    """Both accounts over the candles both recorded, and the paired tests on their daily
    returns. Each side: (equity series, the equity just before it or None, the exit times of
    its closed trades; those within the common candles count). Without an equity before the
    span on both sides, both start from their first common candle's equity."""
    common = sorted({ms for ms, _ in live[0]} & {ms for ms, _ in cand[0]})

    def trades(exits: list[int]) -> int:
        return sum(1 for x in exits if common and common[0] <= x <= common[-1])

    keep = set(common)
    lo = [x for x in live[0] if x[0] in keep]
    co = [x for x in cand[0] if x[0] in keep]
    if live[1] is not None and cand[1] is not None:
        l0, c0 = live[1], cand[1]
    elif common:
        l0, c0 = lo[0][1], co[0][1]
    else:
        l0 = c0 = 0.0
    dl, dc = _daily_returns(lo, l0), _daily_returns(co, c0)
    keys = sorted(set(dl) & set(dc))
    diffs = [dc[k] - dl[k] for k in keys]
    return {
        "from_ms": common[0] if common else None,
        "to_ms": common[-1] if common else None,
        "candles": len(common),
        "days": len(keys),
        "live": account(lo, l0, trades(live[2])),
        "candidate": account(co, c0, trades(cand[2])),
        "daily": {
            "days": len(diffs),
            "mean_difference": sum(diffs) / len(diffs) if diffs else None,
            "t_test": paired_t(diffs),
            "sign_test": sign_test(diffs),
            "psr": psr_of(diffs),
        },
    }


def verdict(cmp: dict[str, Any]) -> str:
    """The evidence in one line, for the dashboard and the phone."""
    d = cmp["daily"]
    if d["days"] < 2:
        return f"{d['days']} day(s) side by side: too few to compare"
    t, s, p = d["t_test"], d["sign_test"], d["psr"]
    ahead = (cmp["candidate"]["return"] or 0.0) - (cmp["live"]["return"] or 0.0)
    parts = [
        f"{d['days']} days",
        f"return {ahead:+.2%} vs live",
        f"beat live on {s['wins']} of {s['wins'] + s['losses']} days",
    ]
    if t["p"] is not None:
        parts.append(f"t-test p={t['p']:.3f}")
    if s["p"] is not None:
        parts.append(f"sign test p={s['p']:.3f}")
    if p is not None:
        parts.append(f"PSR {p:.2f}")
    return ", ".join(parts)


# -- the report --------------------------------------------------------------------------------
def _series(view: LedgerView, start: int, end: int) -> tuple[list[tuple[int, float]], float | None]:
    eq = view.equity(start - 1, end)
    before = view.equity_at(start - 1)
    return eq, float(before["equity"]) if before is not None else None


def candidates_report(
    *,
    state: str | Path | None,
    cand_dir: Path,
    start_ms: int | None = None,
    end_ms: int | None = None,
) -> list[dict[str, Any]]:
    """For each installed candidate: ``name``, ``path``, ``release``, ``version``,
    ``since_ms`` (its ledger's first candle), ``receipt`` (its gate receipt, as the deployed
    model's), ``evidence`` (one line) and ``comparison`` (:func:`compare`) against the live
    ledger over the candles both recorded within [start_ms, end_ms] (no evidence without
    ``state``)."""
    from tradekit.report.model import model_info

    live = Path(state) if state else None
    out = []
    for c in installed(cand_dir):
        info = model_info(c.link)
        entry: dict[str, Any] = {
            "name": c.name,
            "path": str(c.link),
            "release": c.release,
            "version": (info.get("model") or {}).get("version"),
            "receipt": info.get("receipt"),
            "since_ms": None,
            "ledger": str(ledger_path(live, c.name)) if live else None,
            "evidence": "no paper trades yet (the loop starts it at the next candle)",
            "comparison": None,
        }
        if info.get("problem"):
            entry["problem"] = info["problem"]
        path = ledger_path(live, c.name) if live else None
        if path is not None and live is not None and path.is_file() and live.is_file():
            try:
                entry.update(_compare_ledgers(live, path, c, start_ms, end_ms))
            except TradekitError as e:
                entry["evidence"] = f"unreadable: {e}"
        out.append(entry)
    return out


def _compare_ledgers(
    state: Path, path: Path, c: Installed, start_ms: int | None, end_ms: int | None
) -> dict[str, Any]:
    from tradekit.ledger import LedgerView

    with LedgerView(path) as cv, cv.snapshot():
        meta = cv.meta()
        if meta.get("release") and meta["release"] != c.release:
            return {"evidence": "its ledger is of an earlier release (the loop renews it)"}
        since = cv.first_candle_ms()
        start = max(since or 0, start_ms or 0)
        end = end_ms if end_ms is not None else 2**62
        ceq, cbefore = _series(cv, start, end)
        cexits = [int(t["exit_ms"]) for t in cv.trades(start_ms=start - 1, end_ms=end)]
    with LedgerView(state) as lv, lv.snapshot():
        leq, lbefore = _series(lv, start, end)
        lexits = [int(t["exit_ms"]) for t in lv.trades(start_ms=start - 1, end_ms=end)]
    cmp = compare((leq, lbefore, lexits), (ceq, cbefore, cexits))
    return {"since_ms": since, "comparison": cmp, "evidence": verdict(cmp)}


def report(
    *,
    state: str | Path,
    cand_dir: Path,
    live_model: Path,
    start_ms: int | None = None,
    end_ms: int | None = None,
) -> dict[str, Any]:
    """``candidates/1``: the live model (version, receipt) and :func:`candidates_report`."""
    from tradekit.report.model import model_info

    info = model_info(live_model)
    return {
        "schema": SCHEMA,
        "state": str(state),
        "directory": str(cand_dir),
        "live": {
            "path": str(live_model),
            "version": (info.get("model") or {}).get("version"),
            "receipt": info.get("receipt"),
        },
        "candidates": candidates_report(
            state=state, cand_dir=cand_dir, start_ms=start_ms, end_ms=end_ms
        ),
    }
