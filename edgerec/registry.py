"""The model registry's contract (MLflow): where the store is, the registered model, its versions, and the tags and
aliases the gates write and deploy reads. No model code: deploying and promoting read versions without PyTorch
(`training/checkpoints.py` saves and rebuilds the models).

Embedded default: a SQLite file and local artifacts in the state directory (`$EDGEREC_HOME/mlflow`); a
tracking server (PostgreSQL + S3, docs/design.md) through EDGEREC_MLFLOW_TRACKING_URI.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlsplit

from edgerec.config import REPO_ROOT, Settings
from edgerec.errors import ConfigError, MissingInput
from edgerec.redact import redact_url, scrub

REGISTERED_MODEL = "edgerec-reranker"
RECALL_MODEL = "edgerec-recall"  # the cloud's two-tower recall (training/recall), with its own champion
EXPERIMENT = "edgerec-daily-retrain"
CHAMPION = "champion"  # the alias of the last blessed version: the gate's baseline
CHECKPOINT = "checkpoint/model.pt"  # every version's weights, config and feature spec
# model-version tags: the gate writes BLESSED ("true"/"false") and the reasons; deploy requires BLESSED true
VERSION_TAG, BLESSED, GATE = "edgerec.version", "edgerec.blessed", "edgerec.gate"
# the servability gate writes SERVABLE ("true"/"false") and its report; deploy requires SERVABLE true too
SERVABLE, SERVABILITY, BUNDLE_SHA = "edgerec.servable", "edgerec.servability", "edgerec.bundle_manifest_sha256"
# the replay gate writes REPLAYED ("true"/"false") and its figures; deploy refuses a version it refused
REPLAYED, REPLAY = "edgerec.replayed", "edgerec.replay"


def connect(settings: Settings):
    """Point MLflow at the configured store; the experiment stores artifacts in the state directory when
    the store is the embedded one. Returns an MlflowClient."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # no usage reports from an offline pipeline
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # not the store's set-up chatter on every run
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # a bar per checkpoint read is noise
    import mlflow
    from mlflow import MlflowClient

    uri = settings.mlflow.tracking_uri
    if uri and uri.startswith(("http://", "https://")) and urlsplit(uri).password is not None:
        # MLflow prints a tracking server's URI in every run's link: a password in it would reach the logs
        raise ConfigError(f"EDGEREC_MLFLOW_TRACKING_URI holds a password ({redact_url(uri)}): give the tracking "
                          "server's credentials in MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD instead")
    with contextlib.ExitStack() as opening:
        if uri is None:
            settings.mlflow_dir.mkdir(parents=True, exist_ok=True)
            uri = f"sqlite:///{settings.mlflow_dir / 'mlflow.db'}"
            # the first opening creates the database's tables: two tasks side by side on a scheduler (train and
            # train_recall) would both migrate it, and one fail; the lock goes with the file's closing
            fcntl.flock(opening.enter_context((settings.mlflow_dir / ".opening.lock").open("a")), fcntl.LOCK_EX)
        if uri.startswith(("http://", "https://")):
            _check_answers(uri)
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        try:
            experiment = mlflow.get_experiment_by_name(EXPERIMENT)
        except Exception as error:  # any store's failure to open: a missing database, a refused login, ...
            text = scrub(str(error)).strip()  # the whole text first: a cut URL would no longer match
            reason = text.splitlines()[0][:200] if text else type(error).__name__
            raise ConfigError(f"cannot open the MLflow store {redact_url(uri)}: {reason}; check EDGEREC_MLFLOW_"
                              "TRACKING_URI (and MLFLOW_TRACKING_USERNAME/PASSWORD for a server)") from None
        if experiment is None:
            artifacts = None if settings.mlflow.tracking_uri else (settings.mlflow_dir / "artifacts").as_uri()
            create_experiment(EXPERIMENT, artifacts)
        mlflow.set_experiment(EXPERIMENT)
    return MlflowClient()


def create_experiment(name: str, artifact_location: str | None) -> None:
    """Create the experiment unless it exists. Two tasks of a first day (train and train_recall, side by side on a
    scheduler) may both find it missing: the one that creates it second takes the first one's."""
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        mlflow.create_experiment(name, artifact_location=artifact_location)
    except MlflowException as error:
        if error.error_code != "RESOURCE_ALREADY_EXISTS":
            raise


def _check_answers(uri: str, timeout_s: float = 10.0) -> None:
    """Fail fast, naming the URL and the setting, where MLflow's client would retry an unreachable server for
    minutes."""
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout_s):
            return
    except urllib.error.HTTPError:
        return  # it answers; what it answers is the client's business
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise ConfigError(f"the MLflow tracking server {redact_url(uri)} does not answer ({reason}); check "
                          "EDGEREC_MLFLOW_TRACKING_URI") from None


def git_sha() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def version_id(ds: str, run_id: str) -> str:
    """The version string used everywhere downstream (bundle path, KV keys, client requests)."""
    return f"v{ds.replace('-', '')}-{run_id[:8]}"


class Blessing(StrEnum):
    """A version's verdict of a gate, as its tag holds it: BLESSED for the evaluation gate, SERVABLE for the
    servability gate, REPLAYED for the replay gate."""

    PENDING = "pending"  # registered, not judged yet
    PASSED = "true"
    REFUSED = "false"

    @classmethod
    def of(cls, value: str | None) -> Blessing:
        return cls(value) if value in {b.value for b in cls} else cls.PENDING

    @classmethod
    def given(cls, passed: bool) -> Blessing:
        return cls.PASSED if passed else cls.REFUSED


@dataclass(frozen=True)
class ModelVersion:
    """A registered version as the stages hand it to each other: `number` is its number in the registry, `id` the
    version id every downstream system keys on (bundle path, KV keys, channel pointers, clients)."""

    number: str
    run_id: str
    tags: dict[str, str]

    @property
    def id(self) -> str:
        return self.tags.get(VERSION_TAG, f"#{self.number}")

    @property
    def ds(self) -> str | None:
        return self.tags.get("ds")

    @property
    def blessing(self) -> Blessing:
        """The evaluation gate's verdict."""
        return Blessing.of(self.tags.get(BLESSED))

    @property
    def servable(self) -> Blessing:
        """The servability gate's verdict."""
        return Blessing.of(self.tags.get(SERVABLE))

    @property
    def replayed(self) -> Blessing:
        """The replay gate's verdict (pending where it did not judge: external logs, or a manual release)."""
        return Blessing.of(self.tags.get(REPLAYED))

    @property
    def label(self) -> str:
        """How errors name the version: number, id and the git sha it was trained at."""
        return f"version {self.number} ({self.id}, git {self.tags.get('git_sha', '?')[:10]})"

    def to_dict(self) -> dict:
        """What a task hands the next one (an Airflow XCom): plain JSON."""
        return {"number": self.number, "run_id": self.run_id, "tags": dict(self.tags)}

    @classmethod
    def from_dict(cls, value: dict) -> ModelVersion:
        return cls(str(value["number"]), str(value["run_id"]), dict(value["tags"]))

    @classmethod
    def of(cls, v) -> ModelVersion:
        """From MLflow's ModelVersion entity."""
        return cls(str(v.version), v.run_id, dict(v.tags))


def get_version(client, number: str, model: str = REGISTERED_MODEL) -> ModelVersion:
    return ModelVersion.of(client.get_model_version(model, str(number)))


VERSION_ID = re.compile(r"v\d{8}-[0-9a-f]{8}")  # what version_id() makes


def find_version(client, ref: str, model: str = REGISTERED_MODEL) -> ModelVersion:
    """A version of `model` by registry number ("3") or by version id ("v20261103-1a2b3c4d"); MissingInput when
    there is no such version, ConfigError when `ref` is neither (it never reaches the registry's query)."""
    from mlflow.exceptions import MlflowException

    if ref.isdigit() and len(ref) <= 9:
        try:
            return get_version(client, ref, model)
        except MlflowException:
            raise MissingInput(f"{model} has no version {ref}") from None
    if not VERSION_ID.fullmatch(ref):
        raise ConfigError(f"{ref[:80]!r} is neither a registry number nor a version id like v20261103-1a2b3c4d")
    found = client.search_model_versions(f"name = '{model}' and tags.`{VERSION_TAG}` = '{ref}'")
    if not found:
        raise MissingInput(f"no version of {model} has {VERSION_TAG} = {ref!r}")
    return get_version(client, found[0].version, model)


def version_of_day(client, ds: str, model: str = REGISTERED_MODEL) -> ModelVersion | None:
    """The newest version of `model` trained for ds."""
    found = client.search_model_versions(f"name = '{model}' and tags.ds = '{ds}'")
    return get_version(client, max(found, key=lambda v: int(v.version)).version, model) if found else None


def record_verdict(client, model: str, number: str, blessed: bool, verdict_json: str) -> None:
    """An evaluation gate's verdict on a version: BLESSED and GATE tags, and the champion alias when blessed."""
    client.set_model_version_tag(model, number, BLESSED, Blessing.given(blessed).value)
    client.set_model_version_tag(model, number, GATE, verdict_json)
    if blessed:
        client.set_registered_model_alias(model, CHAMPION, number)


DEPLOYED = "edgerec.deployed"  # model-version tag: where and when the version was deployed


def recall_serving(client, ds: str) -> str | None:
    """The recall version that served candidates on ds's logs: the newest one deployed for a day before ds (the
    logs of ds were written before ds's own recall version was trained). None when no recall was deployed."""
    from mlflow.exceptions import MlflowException

    try:
        found = client.search_model_versions(f"name = '{RECALL_MODEL}'")
    except MlflowException:
        return None
    deployed = [ModelVersion.of(v) for v in found if DEPLOYED in v.tags and v.tags.get("ds", "") < ds]
    return max(deployed, key=lambda v: (v.ds, int(v.number))).id if deployed else None


def champion(client, model: str = REGISTERED_MODEL) -> ModelVersion | None:
    from mlflow.exceptions import MlflowException

    try:
        v = client.get_model_version_by_alias(model, CHAMPION)
    except MlflowException:
        return None  # no alias yet (or no registered model): the first version
    return ModelVersion.of(v)
