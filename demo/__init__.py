"""The local demo of `make run`: a bootstrap (operator login, simulator account, pair, a paid order)
and the live view the supervisor prints."""
