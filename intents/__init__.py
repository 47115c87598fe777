"""Intents, in-flight gates, dispatcher and executor (the intents queue)."""
