"""Every version of `edgerec-reranker` carries a checkpoint (state dict, training config, feature spec) besides the
MLflow PyTorch model, so any later code can rebuild it by name rather than unpickle old classes: logging and
registering a trained model, and rebuilding a registered one."""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from edgerec.errors import EdgeRecError
from edgerec.registry import BLESSED, CHECKPOINT, REGISTERED_MODEL, VERSION_TAG, Blessing, ModelVersion, version_id
from training.config import TrainConfig
from training.models import Reranker, build_model


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
                                          tags={**tags, VERSION_TAG: vid, BLESSED: Blessing.PENDING.value})
    return str(version.version), vid


class IncompatibleVersion(EdgeRecError):
    """A registered version whose weights the current model code cannot load (its architecture changed)."""


def load_checkpoint(client, version: ModelVersion) -> dict:
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


def load_version(client, version: ModelVersion) -> Reranker:
    """Rebuild a registered version from its checkpoint with the current model code."""
    return model_from_checkpoint(load_checkpoint(client, version), version.label)
