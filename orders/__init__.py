"""Market-making orders, payments, snapshots intake, memo codec, refunds and the lifecycle jobs."""
