"""``python -m tradekit``."""

from tradekit.entry import run

run()
