"""Ledger fixtures: fresh user and asset ids per test."""
import pytest

from .helpers import fresh


@pytest.fixture
def user():
    return fresh("user")


@pytest.fixture
def asset():
    # A fresh asset id per test: the per-process scale cache must never see a rolled-back Asset row.
    return fresh("asset")
