"""The backtest stage: OHLCV + predictions -> backtest/1 report, trades/1, equity plot.

``run_backtest`` (in ``tradekit.backtest.report``) is the one entry point; ``kernel`` holds the
compiled per-candle ``step`` built on ``tradekit.policy`` and ``tradekit.risk``.
"""
