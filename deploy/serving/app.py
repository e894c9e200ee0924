"""The paging API of the configured environment: deploy targets from the settings; candidates from the recall on
its channel, or from the simulated world's cloud ranker until a recall version is deployed; the simulated world's
item catalog for the candidates' features."""

from __future__ import annotations

from fastapi import FastAPI

from deploy.serving.api import RecallCandidates, RecallFirst, SimulatedCloud, create_app
from deploy.serving.auth import DeviceTokens
from deploy.targets import open_targets
from edgerec.config import Settings


def embedded_app(settings: Settings, users: int | None = None) -> FastAPI:
    from edgerec.sim.config import load_sim_config

    cloud = SimulatedCloud(load_sim_config(settings.sim.config, users=users or settings.sim.users,
                                           seed=settings.sim.seed))
    tokens = DeviceTokens(settings.serving.token_key.encode()) if settings.serving.token_key else None
    targets = open_targets(settings)
    recall = RecallCandidates(targets, settings.home / "serving" / "recall", k=settings.recall.candidates,
                              shown_limit=settings.recall.shown_limit)
    return create_app(targets, RecallFirst(recall, cloud), cloud.catalog, tokens=tokens)
