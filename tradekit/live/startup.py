"""What ``run`` checks and opens before its first cycle: the two live switches and the keys,
the deployed model (``doctor`` makes the same checks through :func:`load_model`), the
exchange, and the engine over the ledger (a fresh ledger's first state in one transaction)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from tradekit.errors import ConfigError, InputError, UsageError
from tradekit.live.signals import FileSignals, ModelSignals, spec_of

if TYPE_CHECKING:
    from tradekit.config import Config
    from tradekit.ledger import Ledger
    from tradekit.live.brokers import LiveLoopBroker, PaperLoopBroker
    from tradekit.live.engine import Engine
    from tradekit.models.loaded import LoadedModel

PERMISSIONS = (
    "the key needs only Query Funds, Query Open Orders & Trades, Create & Modify Orders and "
    "Cancel/Close Orders; never give it Withdraw Funds"
)


def check_config(cfg: Config, live: bool) -> None:
    if not cfg.exchange.symbols:
        raise ConfigError("[exchange] symbols is empty: nothing to trade")
    if cfg.exchange.id == "sample":
        raise UsageError("run needs a real exchange ([exchange] id); 'sample' has no clock")
    if live:
        if cfg.run.mode != "live":
            raise UsageError(
                '--live needs [run] mode = "live" in the config as well (two switches, '
                "so a stray flag never trades real money)"
            )
        missing = [n for n in ("exchange_api_key", "exchange_secret") if not cfg.secret(n)]
        if missing:
            names = " and ".join(
                "TRADEKIT_EXCHANGE_API_KEY"
                if n == "exchange_api_key"
                else "TRADEKIT_EXCHANGE_SECRET"
                for n in missing
            )
            raise ConfigError(f"live mode needs {names} in the environment or .env; {PERMISSIONS}")
        quotes = sorted({s.split("/")[1] for s in cfg.exchange.symbols})
        if len(quotes) > 1:
            raise ConfigError(
                f"[exchange] symbols: live trading keeps one cash balance; these symbols are "
                f"quoted in {', '.join(quotes)} (trade one quote currency per bot)"
            )
    elif cfg.run.mode == "live":
        raise UsageError(
            '[run] mode = "live" but --live was not given: refusing to guess; pass --live '
            "to trade real money, or --paper"
        )


def load_model(cfg: Config, model_dir: Path) -> LoadedModel:
    """The deployed model, checked as ``run`` needs it (files, timeframe, symbols, feature
    set)."""
    from tradekit.models.predict import load_model as load

    if not (model_dir / "manifest.json").exists():
        raise InputError(
            f"{model_dir}: no deployed model (manifest.json missing); deploy one or set [run] model"
        )
    model = load(model_dir, lean=True)  # LightGBM through treelite: no lightgbm in `run`
    if model.timeframe != cfg.exchange.timeframe:
        raise InputError(
            f"{model_dir}: model trained on {model.timeframe} candles, "
            f"[exchange] timeframe is {cfg.exchange.timeframe}"
        )
    if model.per_symbol:
        model._symbols_without_model(list(cfg.exchange.symbols))
    spec_of(model)  # fails now, not at the first candle
    return model


def unjudged(cfg: Config, model_dir: Path) -> list[str]:
    """The ``[policy]``/``[risk]`` settings this machine runs with that differ from those of
    the backtest the model's gate receipt judged (none without such a receipt). The gate vouched
    for the model under those settings; other thresholds or stops are a bot nobody tested."""
    import dataclasses
    import json

    from tradekit.gate import judged_settings, unjudged_settings

    judged = judged_settings(model_dir)
    if judged is None:
        return []
    running = {"policy": dataclasses.asdict(cfg.policy), "risk": dataclasses.asdict(cfg.risk)}
    return unjudged_settings(judged, json.loads(json.dumps(running)))


def load_signals(
    cfg: Config, model_dir: Path, predictions: str | Path | None
) -> FileSignals | ModelSignals:
    symbols = list(cfg.exchange.symbols)
    if predictions is not None:
        return FileSignals(predictions, symbols)
    return ModelSignals(load_model(cfg, model_dir), symbols, cfg.exchange.timeframe)


def open_exchange(cfg: Config, live: bool) -> Any:
    from tradekit.data.exchange import open_exchange as open_

    ex = cfg.exchange
    return open_(
        ex.id,
        api_url=ex.api_url,
        timeout_s=ex.timeout_s,
        rate_limit=ex.rate_limit,
        api_key=cfg.secret("exchange_api_key") if live else None,
        secret=cfg.secret("exchange_secret") if live else None,
        password=cfg.secret("exchange_password") if live else None,
        lean=True,  # one exchange's part of ccxt: a third of its memory and start-up time
    )


def open_engine(
    cfg: Config,
    ledger: Ledger,
    broker: PaperLoopBroker | LiveLoopBroker,
    *,
    mode: str,
    tf_ms: int,
    model_version: str,
) -> tuple[Engine, list[str]]:
    """The engine restored from the ledger, or, for a fresh ledger, its first state written
    with the starting capital and the meta in one transaction (a kill in between leaves a
    ledger that is still fresh). Returns the engine and the symbols it holds that are no
    longer configured."""
    from tradekit.ledger import now_ms
    from tradekit.live.engine import Engine

    meta = ledger.meta()  # ``run`` refused a ledger of the other mode before the exchange
    symbols = list(cfg.exchange.symbols)
    doc = ledger.load_engine()
    # A first start that an older tradekit wrote only half of (meta, no engine state, nothing
    # traded) is started again as fresh.
    fresh = not meta or (doc is None and ledger.count("orders") == 0)
    engine = Engine(
        symbols,
        cfg.policy,
        cfg.risk,
        fee=cfg.backtest.fee,
        slippage=cfg.backtest.slippage,
        cash=broker.starting_cash() if fresh else 0.0,
        broker=broker,
        ledger=ledger,
        tf_ms=tf_ms,
        model_version=model_version,
    )
    if fresh:
        ledger.init(engine.to_doc(), mode=mode, symbols=",".join(symbols), created_ms=str(now_ms()))
        return engine, []
    if doc is None:
        raise InputError(f"{ledger.path}: ledger has orders but no engine state")
    return engine, engine.load_doc(doc)
