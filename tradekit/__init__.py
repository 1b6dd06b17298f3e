"""tradekit: composable Unix-style tools for an ML-driven crypto trading bot."""

from tradekit.threads import configure_openmp

__version__ = "0.1.0"

# First, before anything can load lightgbm or torch: their OpenMP reads its wait policy once,
# when it is loaded (see tradekit.threads).
configure_openmp()
