"""Exchange access, the candle store, the offline sample, imports and quality checks."""
