"""The config's sections: one frozen dataclass each, with defaults, help and checks in code, and
:class:`Config`, all of them together. Stdlib only."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tradekit.config.checks import (
    _between,
    _clusters,
    _ensemble,
    _fraction,
    _non_negative,
    _one_of,
    _opt,
    _periods,
    _port,
    _positive,
    _stop,
    _symbols,
    _timeframe,
    _timeframes,
    _timezone,
    _url,
)

if TYPE_CHECKING:
    from tradekit.config.secrets import Secret

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
