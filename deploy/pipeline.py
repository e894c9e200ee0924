"""The deploy stages of the DAGs, for one logical date or one version (each also an `edgerec` command)."""

from __future__ import annotations

from collections.abc import Callable

from deploy.channels import RECALL_CHANNEL
from deploy.push import DeployResult, deploy_version
from deploy.recall import deploy_recall
from deploy.release import gc, promote
from deploy.targets import open_targets
from edgerec import registry
from edgerec.config import Settings
from edgerec.errors import MissingInput


def day_version(settings: Settings, ds: str) -> str:
    found = registry.version_of_day(registry.connect(settings), ds)
    if found is None:
        raise MissingInput(f"no version of {registry.REGISTERED_MODEL} was trained for ds={ds}")
    return found.id


def deploy_day(settings: Settings, ds: str, version: str | None = None,
               progress: Callable[[str, int, int], None] | None = None) -> DeployResult:
    targets = open_targets(settings)
    try:
        return deploy_version(settings, targets, version or day_version(settings, ds), progress)
    finally:
        targets.close()


def canary_day(settings: Settings, ds: str, version: str | None = None) -> str:
    """Put the day's deployed version (or `version`) on `canary` for EDGEREC_RELEASE_CANARY_PERCENT of devices."""
    targets = open_targets(settings)
    try:
        version = version or day_version(settings, ds)
        promote(settings, targets, version, "canary", settings.release.canary_percent, f"daily retrain ds={ds}")
        return version
    finally:
        targets.close()


def deploy_recall_day(settings: Settings, ds: str, version: str | None = None) -> str:
    """Deploy the day's recall version (or `version`), then point the `recall` channel at it (verified again first:
    the paging API serves candidates from it from then on). Returns the version."""
    targets = open_targets(settings)
    try:
        if version is None:
            found = registry.version_of_day(registry.connect(settings), ds, registry.RECALL_MODEL)
            if found is None:
                raise MissingInput(f"no version of {registry.RECALL_MODEL} was trained for ds={ds}")
            version = found.id
        deploy_recall(settings, targets, version)
        promote(settings, targets, version, RECALL_CHANNEL, 100.0, f"daily retrain ds={ds}")
        return version
    finally:
        targets.close()


def gc_day(settings: Settings, dry_run: bool = False) -> list[str]:
    targets = open_targets(settings)
    try:
        return [v.version for v in gc(settings, targets, settings.release.retention_days, dry_run=dry_run)]
    finally:
        targets.close()
