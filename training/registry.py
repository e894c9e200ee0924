"""MLflow tracking and the model registry: the embedded store, run logging, registered versions, and the
tags and aliases the evaluation gate and the deploy stage read.

Embedded default: a SQLite file and local artifacts in the state directory (`$EDGEREC_HOME/mlflow`); a
tracking server (PostgreSQL + S3, see the README) through EDGEREC_MLFLOW_TRACKING_URI.
Every version of `edgerec-reranker` carries a checkpoint (state dict, training config, feature spec) besides the
MLflow PyTorch model, so any later code can rebuild it by name rather than unpickle old classes.
"""

from __future__ import annotations

import logging
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from edgerec.config import REPO_ROOT, Settings
from edgerec.errors import EdgeRecError, MissingInput
from training.config import TrainConfig
from training.models import Reranker, build_model

REGISTERED_MODEL = "edgerec-reranker"
EXPERIMENT = "edgerec-daily-retrain"
CHAMPION = "champion"  # the alias of the last blessed version: the gate's baseline
CHECKPOINT = "checkpoint/model.pt"
# model-version tags: the gate writes BLESSED ("true"/"false") and the reasons; deploy requires BLESSED true
VERSION_TAG, BLESSED, GATE = "edgerec.version", "edgerec.blessed", "edgerec.gate"
# the servability gate writes SERVABLE ("true"/"false") and its report; deploy requires SERVABLE true too
SERVABLE, SERVABILITY, BUNDLE_SHA = "edgerec.servable", "edgerec.servability", "edgerec.bundle_manifest_sha256"

log = logging.getLogger(__name__)


def connect(settings: Settings):
    """Point MLflow at the configured store; the experiment stores artifacts in the state directory when
    the store is the embedded one. Returns an MlflowClient."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # no usage reports from an offline pipeline
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # not the store's set-up chatter on every run
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # a bar per checkpoint read is noise
    import mlflow
    from mlflow import MlflowClient

    uri = settings.mlflow_tracking_uri
    if uri is None:
        settings.mlflow_dir.mkdir(parents=True, exist_ok=True)
        uri = f"sqlite:///{settings.mlflow_dir / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    if mlflow.get_experiment_by_name(EXPERIMENT) is None:
        artifacts = None if settings.mlflow_tracking_uri else (settings.mlflow_dir / "artifacts").as_uri()
        mlflow.create_experiment(EXPERIMENT, artifact_location=artifacts)
    mlflow.set_experiment(EXPERIMENT)
    return MlflowClient()


def git_sha() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def version_id(ds: str, run_id: str) -> str:
    """The version string used everywhere downstream (bundle path, KV keys, client requests)."""
    return f"v{ds.replace('-', '')}-{run_id[:8]}"


def log_checkpoint(model: Reranker, cfg: TrainConfig, spec: dict) -> None:
    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(CHECKPOINT).name
        torch.save({"model": model.name, "revision": model.revision, "config": cfg.model_dump(), "spec": spec,
                    "state_dict": {k: v.cpu() for k, v in model.state_dict().items()}}, path)
        mlflow.log_artifact(str(path), artifact_path=str(Path(CHECKPOINT).parent))


def register(model: Reranker, cfg: TrainConfig, spec: dict, tags: dict[str, str]) -> tuple[str, str]:
    """Log the model (MLflow PyTorch flavour and checkpoint) in the active run and register it as a new version
    of edgerec-reranker with tags. Returns (registry version number, version id)."""
    import mlflow

    run = mlflow.active_run()
    log_checkpoint(model, cfg, spec)
    # pickle: the module loads back as its own class (pt2 would need an example input and a tensor signature);
    # explicit requirements skip MLflow's slow inference of them
    info = mlflow.pytorch.log_model(model.cpu(), name="model", serialization_format="pickle",
                                    pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"])
    client = mlflow.MlflowClient()
    if not client.search_registered_models(f"name = '{REGISTERED_MODEL}'"):
        client.create_registered_model(REGISTERED_MODEL, description="EdgeRec on-device re-ranker "
                                       "(CRBAN+HUBSM(IE&IPV)); one version per daily retrain")
    vid = version_id(tags["ds"], run.info.run_id)
    version = client.create_model_version(REGISTERED_MODEL, info.model_uri, run_id=run.info.run_id,
                                          model_id=info.model_id,
                                          tags={**tags, VERSION_TAG: vid, BLESSED: "pending"})
    return str(version.version), vid


@dataclass(frozen=True)
class Version:
    number: str
    run_id: str
    tags: dict[str, str]

    @property
    def id(self) -> str:
        return self.tags.get(VERSION_TAG, f"#{self.number}")

    @property
    def label(self) -> str:
        """How errors name the version: number, id and the git sha it was trained at."""
        return f"version {self.number} ({self.id}, git {self.tags.get('git_sha', '?')[:10]})"


def get_version(client, number: str) -> Version:
    v = client.get_model_version(REGISTERED_MODEL, str(number))
    return Version(str(v.version), v.run_id, dict(v.tags))


def find_version(client, ref: str) -> Version:
    """A version by registry number ("3") or by version id ("v20261103-1a2b3c4d")."""
    if ref.isdigit():
        return get_version(client, ref)
    found = client.search_model_versions(f"name = '{REGISTERED_MODEL}' and tags.`{VERSION_TAG}` = '{ref}'")
    if not found:
        raise MissingInput(f"no version of {REGISTERED_MODEL} has {VERSION_TAG} = {ref!r}")
    return get_version(client, found[0].version)


def version_of_day(client, ds: str) -> Version | None:
    """The newest version trained for ds."""
    found = client.search_model_versions(f"name = '{REGISTERED_MODEL}' and tags.ds = '{ds}'")
    return get_version(client, max(found, key=lambda v: int(v.version)).version) if found else None


def champion(client) -> Version | None:
    from mlflow.exceptions import MlflowException

    try:
        v = client.get_model_version_by_alias(REGISTERED_MODEL, CHAMPION)
    except MlflowException:
        return None  # no alias yet (or no registered model): the first version
    return Version(str(v.version), v.run_id, dict(v.tags))


class IncompatibleVersion(EdgeRecError):
    """A registered version whose weights the current model code cannot load (its architecture changed)."""


def load_checkpoint(client, version: Version) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        path = client.download_artifacts(version.run_id, CHECKPOINT, tmp)
        return torch.load(path, map_location="cpu", weights_only=False)


def model_from_checkpoint(checkpoint: dict, label: str) -> Reranker:
    """Rebuild a checkpoint's model with the current code; IncompatibleVersion (naming `label`) when that code
    computes differently: other weights, or the same weights under another revision of the model."""
    model = build_model(checkpoint["model"], checkpoint["spec"], TrainConfig(**checkpoint["config"]))
    revision = checkpoint.get("revision", 1)  # checkpoints from before revisions were recorded: revision 1
    if revision != model.revision:
        raise IncompatibleVersion(f"{label} was trained by revision {revision} of {model.name}; the current code "
                                  f"is revision {model.revision}")
    try:
        model.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as e:
        first = str(e).splitlines()[1].strip() if len(str(e).splitlines()) > 1 else str(e)
        raise IncompatibleVersion(f"{label} was trained by other model code: {first}") from e
    return model


def load_version(client, version: Version) -> Reranker:
    """Rebuild a registered version from its checkpoint with the current model code."""
    return model_from_checkpoint(load_checkpoint(client, version), version.label)
