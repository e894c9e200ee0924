"""Every version of `edgerec-reranker` carries a checkpoint (state dict, training config, feature spec) besides the
MLflow PyTorch model, so any later code can rebuild it by name rather than unpickle old classes: logging and
registering a trained model, and rebuilding a registered one."""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from edgerec.errors import EdgeRecError, MissingInput
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
    """Log the model (MLflow PyTorch flavour) in the active run, which holds its checkpoint already
    (`log_checkpoint`), and register it as a new version of edgerec-reranker with tags. Returns (registry version
    number, version id)."""
    import mlflow

    run = mlflow.active_run()
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
    checkpoint = run_checkpoint(client, version.run_id)
    if checkpoint is None:
        raise MissingInput(f"{version.label} has no {CHECKPOINT} in its run {version.run_id}")
    return checkpoint


def run_checkpoint(client, run_id: str) -> dict | None:
    """The checkpoint an MLflow run logged (`log_checkpoint`); None when it logged none."""
    if not client.list_artifacts(run_id, str(Path(CHECKPOINT).parent)):
        return None
    with tempfile.TemporaryDirectory() as tmp:
        path = client.download_artifacts(run_id, CHECKPOINT, tmp)
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


def warm_start(model: Reranker, checkpoint: dict, spec: dict, label: str) -> None:
    """Start `model` (built for today's feature spec) from a checkpoint's weights of the same model and revision.

    The cloud-side item tables may have grown since (a categorical code is its value + 2 in every spec, so a row
    means the same value on both days): their common rows are copied and new rows keep their fresh start. Every
    other tensor must have the same shape, and the network's own code tables the same sizes per feature (a row
    of a fused table is a code only under the same offsets); otherwise IncompatibleVersion, naming `label`, and
    the model stays as built. Bucket boundaries may have moved by a quantile: that is a start, not a result."""
    from edgerec.features import ITEM_CATEGORICAL

    if checkpoint["model"] != model.name or checkpoint.get("revision", 1) != model.revision:
        raise IncompatibleVersion(f"{label} holds revision {checkpoint.get('revision', 1)} of {checkpoint['model']}, "
                                  f"not revision {model.revision} of {model.name}")
    ours, theirs = spec["features"], checkpoint["spec"]["features"]
    changed = sorted(name for name in ours if name not in ITEM_CATEGORICAL
                     and ours[name]["vocab_size"] != theirs.get(name, {}).get("vocab_size"))
    if changed:
        raise IncompatibleVersion(f"{label}'s feature spec has other code counts for {', '.join(changed)}")
    state, start = model.state_dict(), checkpoint["state_dict"]
    item_tables = {f"items.tables.{name}.weight" for name in (*ITEM_CATEGORICAL, "item_id")}
    copies = []  # checked in full before any is made
    for key, value in state.items():
        if key.startswith("items.learned_"):
            continue  # which rows are learned is decided on today's requests (`ItemTables.restrict`)
        old = start.get(key)
        if old is None:
            raise IncompatibleVersion(f"{label} has no tensor {key}")
        if old.shape == value.shape or (key in item_tables and old.shape[1:] == value.shape[1:]):
            copies.append((value, old))
        else:
            raise IncompatibleVersion(f"{label}'s {key} is {tuple(old.shape)}, today's model needs "
                                      f"{tuple(value.shape)}")
    with torch.no_grad():
        for value, old in copies:
            if old.shape == value.shape:
                value.copy_(old)
            else:  # an item table of another size: the rows both have
                rows = min(len(old), len(value))
                value[:rows].copy_(old[:rows])


def load_version(client, version: ModelVersion) -> Reranker:
    """Rebuild a registered version from its checkpoint with the current model code."""
    return model_from_checkpoint(load_checkpoint(client, version), version.label)
