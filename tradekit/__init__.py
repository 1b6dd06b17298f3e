"""tradekit: composable Unix-style tools for an ML-driven crypto trading bot."""

__version__ = "0.1.0"
