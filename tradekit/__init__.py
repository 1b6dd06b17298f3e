"""tradekit: composable Unix-style tools for an ML-driven crypto trading bot."""

from tradekit import native

__version__ = "0.1.0"

# First, before anything can load lightgbm, torch or pyarrow: they read these settings once,
# when they load (see tradekit.native).
native.configure()
