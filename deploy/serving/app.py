"""The paging API of the configured environment: deploy targets from the settings, the simulated world's cloud
ranker and item catalog as the candidate source."""

from __future__ import annotations

from fastapi import FastAPI

from deploy.serving.api import SimulatedCloud, create_app
from deploy.serving.auth import DeviceTokens
from deploy.targets import open_targets
from edgerec.config import Settings


def embedded_app(settings: Settings, users: int | None = None) -> FastAPI:
    from edgerec.sim.config import load_sim_config

    cloud = SimulatedCloud(load_sim_config(settings.sim.config, users=users or settings.sim.users,
                                           seed=settings.sim.seed))
    tokens = DeviceTokens(settings.serving.token_key.encode()) if settings.serving.token_key else None
    return create_app(open_targets(settings), cloud, cloud.catalog, tokens=tokens)
