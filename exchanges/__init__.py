"""Exchange accounts, the ccxt client factory, error policy and the exchange simulator."""
