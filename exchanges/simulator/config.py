"""Simulator settings: read from Django settings when defined there, else from the environment."""
import os

from django.conf import settings


def sim_setting(name: str, default, cast=str):
    value = getattr(settings, name, None)
    if value is None:
        value = os.environ.get(name)
    if value is None or value == "":
        return default
    return cast(value)


def deposit_confirm_seconds() -> float:
    """SIM_DEPOSIT_CONFIRM_S: how long a received transfer stays pending before it is credited."""
    return sim_setting("SIM_DEPOSIT_CONFIRM_S", 0.0, float)


def step_ms() -> int:
    """SIM_STEP_MS: when > 0, each market advances one step per this many milliseconds of wall time."""
    return sim_setting("SIM_STEP_MS", 0, int)
