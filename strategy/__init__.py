"""Strategy sessions, the tick coordinator, trackers and the pure market-making strategy."""
