"""tradekit.toml: typed sections with defaults in code, env overrides, secrets from env/.env.

Lookup order for the file: ``--config``, ``$TRADEKIT_CONFIG``, ``./tradekit.toml``, built-in
defaults. Any key can be overridden with ``TRADEKIT_<SECTION>__<KEY>``. Secrets never live in
the TOML: they come from the environment or a ``.env`` file beside the config (or in the
working directory), the environment winning.

Stdlib only at import time (``tomllib``), so the CLI starts fast; ``tomlkit`` is imported only
to write files that keep their comments.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import tomllib
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tradekit.errors import ConfigError

ENV_PREFIX = "TRADEKIT_"
CONFIG_ENV = "TRADEKIT_CONFIG"
DEFAULT_FILE = "tradekit.toml"

Check = Callable[[Any], str | None]  # returns a problem description, or None when fine


def _opt(default: Any, help: str, check: Check | None = None) -> Any:
    """A config key: default, one-line help (written into ``config init``), optional check."""
    meta = {"help": help, "check": check}
    if isinstance(default, list | dict):

        def factory(d: Any = default) -> Any:
            return type(d)(d)  # a fresh copy per instance

        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


# -- checks ----------------------------------------------------------------------------------


def _positive(v: float) -> str | None:
    return None if v > 0 else f"must be > 0, got {v}"


def _non_negative(v: float) -> str | None:
    return None if v >= 0 else f"must be >= 0, got {v}"


def _fraction(v: float) -> str | None:
    return None if 0 <= v <= 1 else f"must be a fraction between 0 and 1 (0.2 = 20%), got {v}"


def _stop(v: float) -> str | None:
    """A stop's distance: positive, unlike Freqtrade's stoploss = -0.05."""
    if 0 <= v <= 1:
        return None
    hint = f": for a stop {-v:.0%} below the price, write {-v:g}" if -1 <= v < 0 else ""
    return (
        "must be a positive fraction, the distance below the price (0.05 = 5% below; "
        f"Freqtrade writes it negative), got {v}{hint}"
    )


def _between(low: float, high: float) -> Check:
    def check(v: float) -> str | None:
        return None if low <= v <= high else f"must be between {low:g} and {high:g}, got {v}"

    return check


def _one_of(*choices: str) -> Check:
    def check(v: str) -> str | None:
        return None if v in choices else f"must be one of {', '.join(choices)}; got {v!r}"

    return check


def _timeframe(v: str) -> str | None:
    from tradekit.timeutil import timeframe_ms

    try:
        timeframe_ms(v)
    except Exception as e:  # UsageError carries the wording
        return str(e)
    return None


def _timeframes(v: list[str]) -> str | None:
    return next((p for p in map(_timeframe, v) if p), None)


_SYMBOL_RE = re.compile(r"^[A-Za-z0-9.\-]+/[A-Za-z0-9.\-]+(:[A-Za-z0-9.\-]+)?$")


def _symbols(v: list[str]) -> str | None:
    bad = [s for s in v if not _SYMBOL_RE.match(s)]
    return f"symbols must look like BASE/QUOTE (e.g. BTC/USD); got {bad}" if bad else None


def _url(v: str) -> str | None:
    ok = v == "" or v.startswith(("http://", "https://"))
    return None if ok else f"must be an http(s) URL or empty, got {v!r}"


def _timezone(v: str) -> str | None:
    from tradekit.timeutil import zone

    try:
        zone(v)
    except ValueError as e:
        return str(e)
    return None


def _periods(v: list[int]) -> str | None:
    return None if all(p >= 1 for p in v) else f"periods must be >= 1, got {v}"


def _ensemble(v: dict[str, Any]) -> str | None:
    from tradekit.models.members import check_section

    return check_section(v)


def _clusters(v: dict[str, Any]) -> str | None:
    for name, members in v.items():
        if not isinstance(members, list) or not all(isinstance(s, str) for s in members):
            return f"cluster {name!r} must be a list of symbols"
    return None


# -- sections --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExchangeConfig:
    id: str = _opt("kraken", "ccxt exchange id (kraken, binance, ...) or 'sample' (offline)")
    symbols: list[str] = _opt(["BTC/USD", "ETH/USD"], "unified ccxt symbols", _symbols)
    timeframe: str = _opt("1h", "candle timeframe: 1m, 5m, 15m, 1h, 4h, 1d, ...", _timeframe)
    api_url: str = _opt("", "base URL replacing the exchange's API host (tests, proxies)", _url)
    timeout_s: float = _opt(30.0, "seconds before one HTTP request counts as failed", _positive)
    retries: int = _opt(5, "retries of a transient fault (timeout, 5xx, rate limit)", _non_negative)
    retry_backoff_s: float = _opt(
        1.0, "first retry delay in seconds; doubles each try", _non_negative
    )
    rate_limit: bool = _opt(True, "let ccxt space requests by the exchange's rate limit")


@dataclass(frozen=True)
class DataConfig:
    store: str = _opt("data", "candle store directory: one Parquet per exchange/timeframe/symbol")
    flush_s: float = _opt(
        5.0, "a long fetch saves finished candles at least this often (s)", _non_negative
    )


@dataclass(frozen=True)
class FeaturesConfig:
    set: str = _opt("default", "feature set: default, minimal, or a TOML file describing one")
    periods: list[int] = _opt([10, 20, 50], "indicator look-back periods in candles", _periods)
    include_timeframes: list[str] = _opt(
        ["4h"], "higher timeframes merged onto base rows", _timeframes
    )
    corr_symbols: list[str] = _opt(
        ["BTC/USD"], "reference pairs added as context features", _symbols
    )
    label_horizon: int = _opt(12, "candles ahead for the forward-return label", _positive)
    barrier_width: float = _opt(
        2.0, "triple-barrier label: barriers at this many sigmas of the horizon", _positive
    )


@dataclass(frozen=True)
class ModelConfig:
    kind: str = _opt(
        "lightgbm",
        "lightgbm, lstm, transformer or ensemble",
        _one_of("lightgbm", "lstm", "transformer", "ensemble"),
    )
    objective: str = _opt(
        "regression", "regression or classification", _one_of("regression", "classification")
    )
    train_window: int = _opt(4320, "walk-forward training window in candles", _positive)
    test_window: int = _opt(720, "walk-forward test window in candles", _positive)
    step: int = _opt(720, "walk-forward step in candles", _positive)
    purge: int = _opt(
        0, "gap between train and test in candles (0 = the label horizon)", _non_negative
    )
    seed: int = _opt(42, "random seed: same inputs + seed give identical outputs")
    device: str = _opt("auto", "torch device: auto, cpu or cuda", _one_of("auto", "cpu", "cuda"))
    label: str = _opt(
        "", "label column to learn (empty: label_return, or label_class for classification)"
    )
    per_symbol: bool = _opt(False, "one model per symbol instead of one across symbols")
    n_estimators: int = _opt(300, "lightgbm: boosting rounds", _positive)
    learning_rate: float = _opt(0.05, "lightgbm: learning rate (shrinkage)", _positive)
    num_leaves: int = _opt(31, "lightgbm: leaves per tree", _positive)
    max_bin: int = _opt(
        63,
        "lightgbm: histogram bins per feature (255 fits 2.5x slower on small windows)",
        _positive,
    )
    threads: int = _opt(
        0, "CPU threads for training (0 = the cores left free by the load)", _non_negative
    )
    epochs: int = _opt(10, "lstm/transformer: epochs per fold", _positive)
    batch_size: int = _opt(256, "lstm/transformer: batch size", _positive)
    seq_len: int = _opt(32, "lstm/transformer: candles per input window", _positive)
    hidden: int = _opt(64, "lstm/transformer: hidden size", _positive)
    deep_learning_rate: float = _opt(0.001, "lstm/transformer: AdamW learning rate", _positive)
    ensemble: dict[str, Any] = _opt(
        {},
        "ensemble: [model.ensemble] with the keys of a MEMBERS.toml (members, [[member]], "
        "[regime], [meta]); empty: global and per-symbol LightGBM",
        _ensemble,
    )


@dataclass(frozen=True)
class PolicyConfig:
    entry_threshold: float = _opt(0.002, "enter when the prediction is at least this")
    exit_threshold: float = _opt(0.0, "exit when the prediction falls below this")
    stoploss: float = _opt(
        0.05, "stop-loss distance below entry as a positive fraction (0 = off)", _stop
    )
    take_profit: float = _opt(
        0.0, "take-profit distance above entry as a fraction (0 = off)", _non_negative
    )
    trailing_stop: float = _opt(
        0.0, "trailing-stop distance below the high as a positive fraction (0 = off)", _stop
    )
    partial_exits: list[float] = _opt([], "gains (fractions) at which part of a position is sold")
    partial_exit_frac: float = _opt(
        0.5, "share of the position sold at each partial exit", _fraction
    )
    persistence: int = _opt(1, "exit only after this many consecutive negative candles", _positive)
    dip_entry: bool = _opt(False, "enter after a drop once the prediction turns up")
    dip_frac: float = _opt(
        0.03, "dip entry: the drop from the recent high that counts as a dip", _fraction
    )
    dip_lookback: int = _opt(24, "dip entry: candles that define the recent high", _positive)


@dataclass(frozen=True)
class RiskConfig:
    max_open_positions: int = _opt(3, "open positions at most", _positive)
    max_position_frac: float = _opt(
        0.25, "one position's value at most, fraction of equity", _fraction
    )
    max_position_abs: float = _opt(
        0.0, "one position's value at most, quote currency (0 = off)", _non_negative
    )
    max_trade_frac: float = _opt(0.25, "one order's value at most, fraction of equity", _fraction)
    max_trade_abs: float = _opt(
        0.0, "one order's value at most, quote currency (0 = off)", _non_negative
    )
    max_exposure_frac: float = _opt(
        0.75, "all positions' value at most, fraction of equity", _fraction
    )
    clusters: dict[str, list[str]] = _opt(
        {}, "named groups of symbols, e.g. {majors = [...]}", _clusters
    )
    cluster_max_frac: float = _opt(
        0.5, "one cluster's value at most, fraction of equity", _fraction
    )
    daily_loss_halt_frac: float = _opt(
        0.05, "halt new entries after this loss in a UTC day (0 = off)", _fraction
    )
    max_drawdown_halt_frac: float = _opt(
        0.20, "halt new entries at this drawdown from the peak (0 = off)", _fraction
    )
    drawdown_halt_candles: int = _opt(
        168,
        "candles the drawdown halt lasts before it lifts and the peak re-bases to the equity "
        "then (168 = a week of 1h candles; 0 = only when equity recovers or on `resume`)",
        _non_negative,
    )
    min_order_value: float = _opt(
        5.0, "smallest order in the quote currency (live: the exchange's, if larger)", _non_negative
    )
    qty_step: float = _opt(
        0.0, "order quantity precision (0 = none; live: the exchange's)", _non_negative
    )
    pause_on_drift: bool = _opt(
        False, "`tradekit drift` queues a pause (no new entries) when its alert fires"
    )


@dataclass(frozen=True)
class BacktestConfig:
    fee: float = _opt(0.004, "fee per fill as a fraction (Kraken spot taker: 0.4%)", _fraction)
    slippage: float = _opt(0.0005, "adverse price move per fill as a fraction", _fraction)
    starting_balance: float = _opt(10_000.0, "starting cash in the quote currency", _positive)


@dataclass(frozen=True)
class GateConfig:
    min_sortino: float = _opt(1.5, "lowest acceptable Sortino ratio")
    max_drawdown: float = _opt(0.20, "highest acceptable max drawdown (fraction)", _fraction)
    min_trades: int = _opt(20, "fewest trades for a verdict to mean anything", _non_negative)
    min_profit_factor: float = _opt(0.0, "lowest profit factor (0 = not checked)", _non_negative)
    min_win_rate: float = _opt(0.0, "lowest win rate (0 = not checked)", _fraction)
    must_beat_buy_and_hold: bool = _opt(False, "require a higher return than buy-and-hold")
    min_sharpe: float = _opt(0.0, "lowest Sharpe ratio (0 = not checked)", _non_negative)
    min_psr: float = _opt(
        0.0, "lowest probabilistic Sharpe ratio, 0..1 (0 = not checked)", _fraction
    )
    min_dsr: float = _opt(
        0.95, "gate --sweep: lowest deflated Sharpe ratio of the chosen trial, 0..1", _fraction
    )
    max_pbo: float = _opt(
        0.5, "gate --sweep: highest probability of backtest overfitting, 0..1", _fraction
    )


@dataclass(frozen=True)
class DeployConfig:
    host: str = _opt("", "SSH host of the Pi, or 'local'")
    user: str = _opt(
        "tradekit-deploy",
        "SSH user: the deploy user of pi-setup.sh, which can upload releases and restart the "
        "loop but not read its secrets or ledger",
    )
    port: int = _opt(22, "SSH port", _positive)
    key: str = _opt("", "SSH private key file (empty: the SSH agent/default keys)")
    known_hosts: str = _opt("~/.ssh/known_hosts", "pinned host keys; unknown hosts are refused")
    path: str = _opt("/opt/tradekit", "remote directory holding releases/ and current")
    service: str = _opt("tradekit-run", "systemd service restarted after a deploy")
    keep: int = _opt(5, "releases kept on the host", _positive)
    restart: str = _opt(
        "sudo -n systemctl restart {service}",
        "command run on the host after the switch ({service} is replaced; empty: none)",
    )
    health: str = _opt(
        "loop",
        "'loop': wait until the loop on the host reports the new model running (through "
        "status); else a command run on the host until it succeeds after the restart "
        "({service}, {version}, {path} are replaced); empty: no check",
    )
    health_timeout_s: float = _opt(
        60.0, "seconds the health command has to succeed before the deploy rolls back", _positive
    )
    status: str = _opt(
        "sudo -n -u tradekit /usr/local/libexec/tradekit-loop-status",
        "command run on the host that prints the loop's `tradekit status --json` (health = "
        "'loop'); pi-setup.sh installs this one, which shows only the loop's state and model",
    )


@dataclass(frozen=True)
class RunConfig:
    mode: str = _opt("paper", "paper or live (live also needs --live)", _one_of("paper", "live"))
    state: str = _opt("state/tradekit.db", "SQLite ledger path")
    model: str = _opt("models/current", "deployed model directory")
    poll_s: float = _opt(
        10.0, "seconds between loop iterations (new-candle checks, stop/target watch)", _positive
    )
    paper_balance: float = _opt(
        10_000.0, "paper mode: starting cash in the quote currency", _positive
    )
    exchange_stops: bool = _opt(
        True, "live: keep each position's stop-loss as an order on the exchange"
    )
    order_deadline_s: int = _opt(
        30,
        "live: Kraken rejects an order request still queued this many seconds after it left "
        "(AddOrder deadline, 2..60), so a lost request cannot fill later; resting stops stay",
        _between(2, 60),
    )
    history: int = _opt(
        0,
        "candles per symbol kept for features (0 = what the model's feature set needs)",
        _non_negative,
    )
    candidates: str = _opt(
        "",
        "directory of candidate models paper-trading beside the live one (deploy --candidate; "
        "empty: candidates/ in the directory holding [run] model, /opt/tradekit/candidates on "
        "the Pi)",
    )


@dataclass(frozen=True)
class NotifyConfig:
    url: str = _opt("http://127.0.0.1:8080", "signal-cli REST API base URL", _url)
    sender: str = _opt("", "registered Signal number sending the messages, e.g. +43...")
    recipients: list[str] = _opt([], "numbers or group ids that receive messages")
    timeout_s: float = _opt(10.0, "seconds before one request counts as failed", _positive)
    webhook: str = _opt("", "also POST each message as JSON to this URL (empty: off)", _url)
    text_mode: str = _opt(
        "styled", "styled (**bold**, *italic*, `mono`) or normal", _one_of("styled", "normal")
    )
    events: str = _opt(
        "info",
        "lowest event level sent to the phone: info, warning, error, or off",
        _one_of("info", "warning", "error", "off"),
    )
    batch_s: float = _opt(
        30.0, "events within this many seconds go out as one message", _non_negative
    )
    max_per_hour: int = _opt(
        20, "most event messages per hour; the rest wait and go out batched", _positive
    )
    allow: list[str] = _opt(
        [], "numbers allowed to send commands (empty: the recipients that are numbers)"
    )
    commands: bool = _opt(True, "`listen` answers status/pause/resume/kill/ask from the phone")
    receive: str = _opt(
        "auto",
        "how `listen` reads messages: auto (from /v1/about), poll or websocket",
        _one_of("auto", "poll", "websocket"),
    )
    poll_s: float = _opt(5.0, "seconds between receive polls and event checks", _positive)
    timezone: str = _opt(
        "",
        "time zone of the times shown to a person (summary, phone, ask), e.g. Europe/Vienna "
        "(empty: the system's)",
        _timezone,
    )
    ignored_per_hour: int = _opt(
        5, "ignored messages kept per hour per sender (strangers); the rest are counted", _positive
    )
    ignored_keep_days: float = _opt(
        7.0, "days the ignored messages stay in the ledger's messages table", _positive
    )
    promote_socket: str = _opt(
        "/run/tradekit-promote.sock",
        "the phone's `promote NAME` asks the deploy user's promote helper through this socket "
        "(tradekit-promote.socket, installed by pi-setup.sh)",
    )


@dataclass(frozen=True)
class AskConfig:
    provider: str = _opt(
        "none",
        "none (offline summary), anthropic, openai (any OpenAI-compatible API) or ollama "
        "(Ollama's own API, which takes the context window)",
        _one_of("none", "anthropic", "openai", "ollama"),
    )
    model: str = _opt("claude-haiku-5-5", "model id for the provider (the current Haiku)")
    base_url: str = _opt(
        "",
        "API base URL (empty: the provider's: https://api.anthropic.com; Ollama's "
        "http://127.0.0.1:11434 for ollama and http://127.0.0.1:11434/v1 for openai)",
        _url,
    )
    language: str = _opt(
        "auto", "answer language: auto (the question's: German or English) or a code, e.g. de"
    )
    max_context_chars: int = _opt(20_000, "size cap of the context sent to the model", _positive)
    max_tokens: int = _opt(2048, "most tokens the model may produce (thinking included)", _positive)
    timeout_s: float = _opt(60.0, "seconds before the provider counts as failed", _positive)
    price_in: float = _opt(
        0.10, "USD per million input tokens, for the recorded cost", _non_negative
    )
    price_out: float = _opt(
        0.50, "USD per million output tokens, for the recorded cost", _non_negative
    )
    context_tokens: int = _opt(
        0,
        "the model's context window in tokens; the context is cut to fit (0: the provider's: "
        "anthropic 200000, ollama 8192, openai 128000 at api.openai.com, else 4096)",
        _non_negative,
    )
    allow_http: bool = _opt(
        False, "allow a plain http:// base_url beyond loopback (the context travels unencrypted)"
    )
    key_hosts: list[str] = _opt(
        [], "hosts besides the provider's own and loopback that may receive its API key"
    )


def _port(v: int) -> str | None:
    return None if 0 <= v <= 65535 else f"must be a TCP port 0-65535 (0: any free one), got {v}"


@dataclass(frozen=True)
class ServeConfig:
    host: str = _opt(
        "127.0.0.1", "address `serve` listens on (0.0.0.0 also needs --allow-all-interfaces)"
    )
    port: int = _opt(
        8642,
        "TCP port of the dashboard, the API and /metrics (not 8080: signal-cli-rest-api's)",
        _port,
    )
    allowed_hosts: list[str] = _opt(
        [],
        'more Host names the dashboard answers to, e.g. "bot.lan" ("*": any)',
    )
    refresh_s: float = _opt(5.0, "seconds between the pages' live updates", _positive)


@dataclass(frozen=True)
class DriftConfig:
    window_days: float = _opt(
        7.0, "days of the newest candles `drift` compares with the training data", _positive
    )
    min_rows: int = _opt(100, "fewer rows than this are too few to judge (no alert)", _positive)
    psi_warn: float = _opt(0.1, "population stability index of a moderate shift", _positive)
    psi_alert: float = _opt(0.25, "population stability index of a significant shift", _positive)
    feature_share: float = _opt(
        0.2, "alert when at least this share of the features shifts past psi_alert", _fraction
    )
    replay_tolerance: float = _opt(
        1e-6, "largest difference between a live prediction and its replay", _non_negative
    )
    max_age_days: float = _opt(
        0.0, "recommend retraining a model older than this (0 = only on drift)", _non_negative
    )


SECTIONS: dict[str, type] = {
    "exchange": ExchangeConfig,
    "data": DataConfig,
    "features": FeaturesConfig,
    "model": ModelConfig,
    "policy": PolicyConfig,
    "risk": RiskConfig,
    "backtest": BacktestConfig,
    "gate": GateConfig,
    "deploy": DeployConfig,
    "run": RunConfig,
    "notify": NotifyConfig,
    "ask": AskConfig,
    "serve": ServeConfig,
    "drift": DriftConfig,
}

SECTION_HELP = {
    "exchange": "Where candles and orders go.",
    "data": "Local candle store.",
    "features": "Feature set for featurize (FreqAI: indicator_periods_candles, ...).",
    "model": "Training and walk-forward validation.",
    "policy": "Predictions -> entries and exits (shared by backtest and run).",
    "risk": "Hard limits (shared by backtest and run).",
    "backtest": "Simulation costs and starting cash.",
    "gate": "Quality gate a model must pass before deploy.",
    "deploy": "The Pi that runs the live loop.",
    "run": "The live/paper loop.",
    "notify": "Signal through signal-cli-rest-api.",
    "ask": "One-shot LLM analyst (reads only, never trades).",
    "serve": "The dashboard, REST API and /metrics (`tradekit serve`).",
    "drift": "The drift sentinel (`tradekit drift`): thresholds and the window it reads.",
}

# Secret name -> environment variable. Never read from TOML, never printed.
SECRET_ENV = {
    "exchange_api_key": "TRADEKIT_EXCHANGE_API_KEY",
    "exchange_secret": "TRADEKIT_EXCHANGE_SECRET",
    "exchange_password": "TRADEKIT_EXCHANGE_PASSWORD",
    "anthropic_api_key": "ANTHROPIC_API_KEY",
    "openai_api_key": "OPENAI_API_KEY",
    "deploy_sudo_password": "TRADEKIT_DEPLOY_SUDO_PASSWORD",
    "notify_webhook_token": "TRADEKIT_WEBHOOK_TOKEN",
    "serve_token": "TRADEKIT_SERVE_TOKEN",
}
_SECRET_WORDS = ("key", "secret", "password", "token", "passphrase")
_SECRET_EXEMPT = {("deploy", "key"), ("deploy", "known_hosts")}  # paths, not secrets


class Secret:
    """A secret value that never shows itself in repr, str, logs or f-strings."""

    __slots__ = ("_value", "source")

    def __init__(self, value: str, source: str) -> None:
        self._value = value
        self.source = source

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__


@dataclass(frozen=True)
class Config:
    exchange: ExchangeConfig = field(default_factory=ExchangeConfig)
    data: DataConfig = field(default_factory=DataConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    risk: RiskConfig = field(default_factory=RiskConfig)
    backtest: BacktestConfig = field(default_factory=BacktestConfig)
    gate: GateConfig = field(default_factory=GateConfig)
    deploy: DeployConfig = field(default_factory=DeployConfig)
    run: RunConfig = field(default_factory=RunConfig)
    notify: NotifyConfig = field(default_factory=NotifyConfig)
    ask: AskConfig = field(default_factory=AskConfig)
    serve: ServeConfig = field(default_factory=ServeConfig)
    drift: DriftConfig = field(default_factory=DriftConfig)
    path: Path | None = None
    secrets: Mapping[str, Secret] = field(default_factory=dict)
    # "section.key" of the values an implicitly found ./tradekit.toml set (not --config,
    # $TRADEKIT_CONFIG or the environment): a folder's file is not trusted to send keys away.
    from_cwd: frozenset[str] = frozenset()

    def secret(self, name: str) -> str | None:
        """The plain value of a secret, or None when unset."""
        s = self.secrets.get(name)
        return s.reveal() if s else None

    def as_dict(self) -> dict[str, dict[str, Any]]:
        """The effective settings, section by section (no secrets)."""
        return {name: dataclasses.asdict(getattr(self, name)) for name in SECTIONS}


# -- parsing ---------------------------------------------------------------------------------


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def coerce(value: Any, tp: Any, where: str, *, text: bool = True) -> Any:
    """Check a value against a field type. With ``text`` the value is text from an env var or
    the command line and is read as the field's type; a TOML value (``text=False``) must
    already have it: ``fee = "0.1"`` in the file is a type error, not a number."""
    origin = typing.get_origin(tp)
    if tp is Any:  # a free-form table's values ([model.ensemble]): its section's check reads them
        return value
    if text and isinstance(value, str) and tp is not str:
        value = _parse_text(value, tp, where)
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    elif origin is list:
        (item_tp,) = typing.get_args(tp)
        if isinstance(value, list | tuple):
            return [coerce(v, item_tp, f"{where}[{i}]", text=False) for i, v in enumerate(value)]
    elif origin is dict:
        _, val_tp = typing.get_args(tp)
        if isinstance(value, dict):
            return {str(k): coerce(v, val_tp, f"{where}.{k}", text=False) for k, v in value.items()}
    raise ConfigError(f"{where}: expected {_type_name(tp)}, got {_show(value)}")


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) is list:
        item = typing.get_args(tp)[0]
        plural = {bool: "true/false values", int: "integers", float: "numbers", str: "strings"}
        return f"a list of {plural.get(item, str(item))}"
    if typing.get_origin(tp) is dict:
        return "a table"
    return {bool: "true/false", int: "an integer", float: "a number", str: "a string"}.get(
        tp, str(tp)
    )


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _parse_text(text: str, tp: Any, where: str) -> Any:
    """Text from an env var or the command line, read as the field's type."""
    t = text.strip()
    if tp is bool:
        low = t.lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{where}: expected true/false, got {text!r}")
    if tp in (int, float):
        try:
            return int(t) if tp is int else float(t)
        except ValueError:
            raise ConfigError(f"{where}: expected {_type_name(tp)}, got {text!r}") from None
    origin = typing.get_origin(tp)
    if origin in (list, dict):
        if origin is list and not t.startswith("["):
            # Comma-separated shorthand: BTC/USD,ETH/USD
            item_tp = typing.get_args(tp)[0]
            parts = [p.strip() for p in t.split(",") if p.strip()]
            return [p if item_tp is str else _parse_text(p, item_tp, where) for p in parts]
        try:
            return tomllib.loads(f"v = {t}")["v"]
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{where}: cannot read {text!r} as TOML: {e}") from None
    return text


def _build_section(
    name: str, raw: Mapping[str, Any], where: str, origins: Mapping[str, str] | None = None
) -> Any:
    """Build and check one section. ``origins`` names where a key's value came from when that
    is not the file (an environment variable), so an error points at the right place."""
    cls = SECTIONS[name]
    types_ = _field_types(cls)
    origins = origins or {}

    def loc(key: str) -> str:
        return origins.get(key) or f"{where}[{name}] {key}"

    kwargs: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in types_:
            if (name, key) not in _SECRET_EXEMPT and any(w in key for w in _SECRET_WORDS):
                raise ConfigError(
                    f"{where}[{name}] {key}: secrets never live in the TOML; set it in the "
                    f"environment or .env ({', '.join(SECRET_ENV.values())})"
                )
            close = difflib.get_close_matches(key, list(types_), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ConfigError(f"{where}[{name}] {key}: unknown key{hint}")
        kwargs[key] = coerce(value, types_[key], loc(key), text=key in origins)
    section = cls(**kwargs)
    for f in dataclasses.fields(cls):
        check = f.metadata.get("check")
        problem = check(getattr(section, f.name)) if check else None
        if problem:
            raise ConfigError(f"{loc(f.name)}: {problem}")
    return section


def with_overrides(section: Any, name: str, flags: Mapping[str, tuple[str, Any]]) -> Any:
    """``section`` with command-line values laid over it and checked like the file's.

    ``flags`` maps a key to (flag name, value); None values are left out. A bad value is a
    usage error naming the flag, e.g. ``--max-drawdown: must be a fraction ...`` (exit 2)."""
    from tradekit.errors import UsageError

    given = {k: v for k, (_, v) in flags.items() if v is not None}
    if not given:
        return section
    raw = {**dataclasses.asdict(section), **given}
    try:
        # Values from typer are already typed: coerce them as TOML values, not text.
        return _build_section(name, raw, "", {})
    except ConfigError as e:
        msg = str(e)
        for key, (flag, _) in flags.items():
            prefix = f"[{name}] {key}:"
            if msg.startswith(prefix) and key in given:
                raise UsageError(f"{flag}:{msg[len(prefix) :]}") from None
        raise UsageError(msg) from None


def find_config(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """The config file to use: --config, $TRADEKIT_CONFIG, ./tradekit.toml, or None."""
    if explicit:
        p = Path(explicit).expanduser()
        if not p.is_file():
            raise ConfigError(f"{p}: config file not found")
        return p
    env = os.environ.get(CONFIG_ENV)
    if env:
        p = Path(env).expanduser()
        if not p.is_file():
            raise ConfigError(f"{p}: config file not found (from ${CONFIG_ENV})")
        return p
    local = Path(DEFAULT_FILE)
    return local if local.is_file() else None


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not valid TOML: the file is not UTF-8 text") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from None


def env_overrides(environ: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """TRADEKIT_<SECTION>__<KEY>=value, grouped by section; unknown names are errors."""
    out: dict[str, dict[str, str]] = {}
    for var, value in environ.items():
        if not var.startswith(ENV_PREFIX) or "__" not in var:
            continue
        section, _, key = var[len(ENV_PREFIX) :].partition("__")
        section, key = section.lower(), key.lower()
        if section not in SECTIONS:
            close = difflib.get_close_matches(section, list(SECTIONS), n=1)
            hint = f"; did you mean TRADEKIT_{close[0].upper()}__{key.upper()}?" if close else ""
            raise ConfigError(f"environment {var}: unknown section {section!r}{hint}")
        out.setdefault(section, {})[key] = value
    return out


def read_dotenv(path: Path) -> dict[str, str]:
    """KEY=VALUE lines; '#' comments, optional 'export ', single or double quotes."""
    values: dict[str, str] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    for n, line in enumerate(lines, 1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        s = s.removeprefix("export ").strip()
        key, sep, value = s.partition("=")
        key = key.strip()
        if not sep or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", key):
            raise ConfigError(f"{path}:{n}: expected KEY=VALUE")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        values[key] = value
    return values


def load_secrets(environ: Mapping[str, str], config_path: Path | None) -> dict[str, Secret]:
    dotenv: dict[str, str] = {}
    dirs = [Path.cwd()] + ([config_path.parent] if config_path else [])
    for d in dict.fromkeys(p.resolve() for p in dirs):  # cwd first, then beside the config
        f = d / ".env"
        if f.is_file():
            for k, v in read_dotenv(f).items():
                dotenv.setdefault(k, v)
    secrets: dict[str, Secret] = {}
    for name, var in SECRET_ENV.items():
        if environ.get(var):
            secrets[name] = Secret(environ[var], "environment")
        elif dotenv.get(var):
            secrets[name] = Secret(dotenv[var], ".env")
    return secrets


def load_config(
    path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> Config:
    """Read, merge and validate the configuration. Raises ConfigError naming the key."""
    env = os.environ if environ is None else environ
    file = find_config(path)
    raw: dict[str, Any] = read_toml(file) if file else {}
    where = f"{file}: " if file else ""
    for name, value in raw.items():
        if name not in SECTIONS:
            close = difflib.get_close_matches(name, list(SECTIONS), n=1)
            hint = f"; did you mean [{close[0]}]?" if close else ""
            raise ConfigError(f"{where}[{name}]: unknown section{hint}")
        if not isinstance(value, dict):
            raise ConfigError(f"{where}{name}: expected a [{name}] table, got {_show(value)}")
    sections: dict[str, Any] = {}
    overrides = env_overrides(env)
    for name in SECTIONS:
        merged = dict(raw.get(name, {}))
        origins: dict[str, str] = {}
        for key, text in overrides.get(name, {}).items():
            var = f"{ENV_PREFIX}{name.upper()}__{key.upper()}"
            if key not in _field_types(SECTIONS[name]):
                close = difflib.get_close_matches(key, list(_field_types(SECTIONS[name])), n=1)
                hint = (
                    f"; did you mean {ENV_PREFIX}{name.upper()}__{close[0].upper()}?"
                    if close
                    else ""
                )
                raise ConfigError(f"environment {var}: unknown key{hint}")
            merged[key] = text
            origins[key] = f"environment {var} ([{name}] {key})"
        sections[name] = _build_section(name, merged, where, origins)
    # As find_config decides: no --config and no $TRADEKIT_CONFIG, so ./tradekit.toml.
    implicit = file is not None and not path and not os.environ.get(CONFIG_ENV)
    from_cwd = frozenset(
        f"{name}.{key}"
        for name in SECTIONS
        for key in raw.get(name, {})
        if implicit and key not in overrides.get(name, {})
    )
    return Config(**sections, path=file, secrets=load_secrets(env, file), from_cwd=from_cwd)


# -- writing ---------------------------------------------------------------------------------


def _default_of(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    return f.default_factory()  # type: ignore[misc,operator]


def template() -> str:
    """The commented config that ``config init`` writes and tradekit.toml.example holds."""
    import tomlkit

    doc = tomlkit.document()
    doc.add(tomlkit.comment("tradekit configuration: every key with its default."))
    doc.add(tomlkit.comment("Override any key from the environment: TRADEKIT_<SECTION>__<KEY>,"))
    doc.add(tomlkit.comment("e.g. TRADEKIT_RISK__MAX_OPEN_POSITIONS=2."))
    doc.add(tomlkit.comment("Secrets never live here. Put them in the environment or in .env:"))
    for var in SECRET_ENV.values():
        doc.add(tomlkit.comment(f"  {var}"))
    for name, cls in SECTIONS.items():
        doc.add(tomlkit.nl())
        table = tomlkit.table()
        table.add(tomlkit.comment(SECTION_HELP[name]))
        for f in dataclasses.fields(cls):
            table.add(tomlkit.comment(f.metadata["help"]))
            value = _default_of(f)
            item = tomlkit.inline_table() if isinstance(value, dict) else tomlkit.item(value)
            if isinstance(value, dict):
                item.update(value)
            table.add(f.name, item)
        doc.add(name, table)
    return tomlkit.dumps(doc)


def set_value(path: Path, dotted: str, text: str) -> Any:
    """Set ``section.key`` in the file to ``text`` read as the key's type; keeps comments.

    The whole file is validated before it is replaced, atomically.
    """
    import tomlkit

    from tradekit.fsutil import atomic_write_text

    section, _, key = dotted.partition(".")
    if section not in SECTIONS or not key:
        close = difflib.get_close_matches(section, list(SECTIONS), n=1)
        hint = f"; did you mean {close[0]}.{key or 'KEY'}?" if close else ""
        raise ConfigError(
            f"{dotted!r}: expected SECTION.KEY with a section of {', '.join(SECTIONS)}{hint}"
        )
    types_ = _field_types(SECTIONS[section])
    if key not in types_:
        if (section, key) not in _SECRET_EXEMPT and any(w in key for w in _SECRET_WORDS):
            raise ConfigError(
                f"[{section}] {key}: secrets never live in the TOML; set it in the "
                f"environment or .env ({', '.join(SECRET_ENV.values())})"
            )
        close = difflib.get_close_matches(key, list(types_), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(f"[{section}] {key}: unknown key{hint}")
    value = coerce(text, types_[key], f"[{section}] {key}")
    source = path.read_text(encoding="utf-8") if path.exists() else template()
    try:
        doc = tomlkit.parse(source)
    except Exception as e:  # tomlkit's ParseError carries line and column
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    if section not in doc:
        doc.add(section, tomlkit.table())
    if isinstance(value, dict):  # stay on its line as `key = {...}`, beside its comment
        inline = tomlkit.inline_table()
        inline.update(value)
        doc[section][key] = inline  # type: ignore[index]
    else:
        doc[section][key] = value  # type: ignore[index]
    new = tomlkit.dumps(doc)
    # Validate the result as a whole before anything touches the disk.
    raw = tomllib.loads(new)
    for name, body in raw.items():
        if name in SECTIONS and isinstance(body, dict):
            _build_section(name, body, f"{path}: ")
    atomic_write_text(path, new)
    return value


def redacted(config: Config) -> dict[str, Any]:
    """Effective config plus which secrets are set (values masked) and where from."""
    out: dict[str, Any] = config.as_dict()
    out["secrets"] = {
        name: (f"*** (from {config.secrets[name].source})" if name in config.secrets else "unset")
        for name in SECRET_ENV
    }
    return out


def secret_values(config: Config) -> list[str]:
    return [s.reveal() for s in config.secrets.values() if s.reveal()]


__all__ = ["Config", "ConfigError", "Secret", "load_config", "template"]
