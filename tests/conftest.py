"""Shared fixtures: tiny simulated worlds, built once per test session."""

from __future__ import annotations

import pytest

from edgerec.sim.config import load_sim_config
from edgerec.sim.engine import simulate_in_memory


@pytest.fixture(scope="session")
def world_events():
    """About three thousand sessions of the default world."""
    return simulate_in_memory(load_sim_config(users=2000, seed=11))
