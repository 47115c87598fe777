"""A deterministic Binance-spot-compatible exchange, persisted in the database and served over HTTP."""
