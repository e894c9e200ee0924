"""Pipeline settings: read once from the environment, with defaults for the embedded run.

Every variable is listed in the README. A bad value fails with the variable's name and allowed range.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from edgerec.errors import build_config

REPO_ROOT = Path(__file__).resolve().parent.parent
DAGS_FOLDER = REPO_ROOT / "dags"


class Settings(BaseModel):
    """One field per EDGEREC_<NAME> environment variable."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    home: Path = Field(Path(".edgerec"), description="state directory holding every output of the embedded run")
    raw_dir: Path | None = Field(None, description="raw zone (events/ and items/); default HOME/raw")
    source: Literal["simulator", "external"] = Field(
        "simulator", description="simulator: the daily DAG simulates its day; external: logs arrive from clients")
    sim_users: int = Field(300, ge=1, le=100_000_000, description="users of the simulated world")
    sim_seed: int = Field(7, ge=0, le=2**32 - 1, description="seed of the simulated world")
    sim_corrupt_rate: float = Field(0.0, ge=0.0, le=0.5, description="share of bad lines the simulator injects")
    sim_world: Literal["default", "revisit"] = Field(
        "default", description="named simulated world (edgerec.sim.config.WORLDS; docs/worlds.md)")
    sim_config: Path | None = Field(None, description="JSON file with simulator knobs over the named world's "
                                                      "(see edgerec.sim.config)")
    max_bad_share: float = Field(0.01, ge=0.0, le=1.0, description="bad-row share above which a day fails")
    spark_master: str = Field("local[*]", description="Spark master URL (a cluster: spark://..., yarn, k8s://...)")
    spark_shuffle_partitions: int = Field(4, ge=1, le=100_000, description="spark.sql.shuffle.partitions")
    spark_driver_memory: str = Field("4g", description="spark.driver.memory in local mode")
    lookback_days: int = Field(3, ge=1, le=60, description="days of behaviour sequences reach back")
    session_gap_minutes: float = Field(30.0, gt=0, le=1_440, description="inactivity that splits sessions")
    ie_length: int = Field(50, ge=1, le=1_000, description="IE sequence length m")
    ipv_length: int = Field(30, ge=1, le=1_000, description="IPV sequence length n")
    trigger_k: int = Field(5, ge=1, le=100, description="client rule: unclicked exposures that trigger a re-rank")
    num_buckets: int = Field(10, ge=2, le=1_000, description="quantile buckets per bucketized feature")
    fit_days: int = Field(7, ge=1, le=365, description="days of requests the bucket boundaries are fit on")
    train_days: int = Field(7, ge=1, le=365, description="days before ds the train mart holds (test: ds itself)")
    sample_rate: float = Field(1.0, gt=0.0, le=1.0, description="share of users in the marts, by a hash of user_id")
    dbt_target: Literal["duckdb", "spark"] = Field("duckdb", description="dbt profile target (dbt/profiles.yml)")
    quality_config: Path | None = Field(None, description="data-quality thresholds file; default the packaged one")
    alert_webhook_url: str | None = Field(None, description="POST alerts as JSON here (e.g. a chat incoming webhook)")
    alert_email_to: str | None = Field(None, description="comma-separated addresses to email alerts to")
    alert_email_from: str = Field("edgerec@localhost", description="sender address of alert emails")
    alert_smtp_host: str = Field("127.0.0.1", description="SMTP server for alert emails")
    alert_smtp_port: int = Field(25, ge=1, le=65_535, description="SMTP port for alert emails")
    train_models: str = Field("all", description="comma-separated models to train (training.models), or all")
    train_epochs: int | None = Field(None, ge=1, le=1_000, description="most passes over the train split [default: 10]")
    train_device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: CUDA when present, else CPU")
    train_workers: int = Field(0, ge=0, le=256, description="processes training the day's models side by side on "
                                                            "the CPU, one thread each (0: one per core)")
    train_config: Path | None = Field(None, description="JSON file with training knobs (training.config.TrainConfig)")
    gate_min_gauc: float = Field(0.55, ge=0.0, le=1.0, description="evaluation gate: GAUC floor a version must reach")
    gate_tolerance: float = Field(0.002, ge=0.0, le=1.0,
                                  description="evaluation gate: GAUC a version may lose against the champion")
    servability_config: Path | None = Field(None, description="JSON file with servability budgets "
                                            "(training.servability.Budgets)")
    mlflow_tracking_uri: str | None = Field(None, description="MLflow tracking server or store; default a SQLite "
                                                              "file and local artifacts in the state directory")
    kv_url: str | None = Field(None, description="key-value store of the embedding rows: sqlite:///path, "
                               "redis://host:port/db or dynamodb://table; default a SQLite file in the state directory")
    cdn_url: str | None = Field(None, description="CDN origin of bundles and channel pointers: a directory or "
                                "s3://bucket/prefix; default HOME/cdn")
    release_key: str | None = Field(None, description="HMAC key that signs channel pointers; default a random key "
                                    "kept in HOME/release/release.key (set it in production)")
    release_actor: str | None = Field(None, description="who release actions are recorded as; default user@host")
    release_retention_days: float = Field(7.0, ge=0.0, le=3_650, description="gc keeps versions younger than this")
    canary_percent: float = Field(10.0, ge=0.0, le=100.0, description="devices the daily DAG's canary reaches (%)")
    task_retries: int = Field(2, ge=0, le=10, description="Airflow retries per task (`edgerec run`: 0)")
    run_date: dt.date = Field(dt.date(2026, 11, 3), description="last logical date `make run` runs")
    run_days: int = Field(3, ge=1, le=366, description="days `make run` runs, ending at run_date (train on the "
                                                       "days before it)")

    @property
    def raw(self) -> Path:
        return self.raw_dir or self.home / "raw"

    @property
    def warehouse(self) -> Path:
        """Parquet datasets partitioned by ds: events, quarantine, sessions, requests, features, train_features."""
        return self.home / "warehouse"

    def dataset(self, name: str) -> Path:
        return self.warehouse / name

    @property
    def duckdb_path(self) -> Path:
        """The dbt-duckdb database holding the marts."""
        return self.home / "warehouse.duckdb"

    @property
    def mlflow_dir(self) -> Path:
        """The embedded MLflow store: mlflow.db (runs and registry) and artifacts/."""
        return self.home / "mlflow"

    @property
    def bundles_dir(self) -> Path:
        """Exported model bundles, one immutable directory per version (what deploy ships to the CDN)."""
        return self.home / "bundles"

    @property
    def kv(self) -> str:
        return self.kv_url or f"sqlite:///{self.home / 'kv.sqlite'}"

    @property
    def cdn(self) -> str:
        return self.cdn_url or str(self.home / "cdn")

    @property
    def release_dir(self) -> Path:
        """The release audit log, deploy journals and the embedded signing key."""
        return self.home / "release"

    @property
    def airflow_home(self) -> Path:
        return self.home / "airflow"

    def layout(self, ds: dt.date | str) -> DayLayout:
        return DayLayout(self, str(ds))


@dataclass(frozen=True)
class DayLayout:
    """Where one logical day's inputs and outputs live in the state directory."""

    settings: Settings
    ds: str

    @property
    def raw_events(self) -> Path:
        return self.settings.raw / "events" / f"ds={self.ds}"

    @property
    def raw_items(self) -> Path:
        return self.settings.raw / "items" / f"ds={self.ds}" / "items.parquet"

    @property
    def quarantine_raw(self) -> Path:
        return self.settings.home / "quarantine" / "raw" / f"ds={self.ds}" / "bad_rows.jsonl"

    @property
    def reports(self) -> Path:
        return self.settings.home / "reports" / f"ds={self.ds}"

    @property
    def training(self) -> Path:
        """The day's training reports: comparison table (md, csv, json, png), per-model metrics, gate verdict."""
        return self.reports / "training"

    @property
    def export(self) -> Path:
        """The day's export reports: the servability gate's verdict (json, md)."""
        return self.reports / "export"

    # The day's reports are the hand-off between its stages: each file is named here and nowhere else.
    @property
    def raw_validation_report(self) -> Path:
        """Good, bad and quarantined rows of the raw logs (`validate_raw`)."""
        return self.reports / "raw_validation.json"

    @property
    def spark_summary(self) -> Path:
        """Each Spark job's figures and seconds, and the lookback days the requests saw."""
        return self.reports / "spark_summary.json"

    @property
    def dbt_build_report(self) -> Path:
        """Rows per mart and the failed dbt nodes."""
        return self.reports / "dbt_build.json"

    def quality_report(self, layer: str) -> Path:
        """The data-quality gate's checks of one layer (raw, features, marts)."""
        return self.reports / f"quality_{layer}.json"

    @property
    def training_summary(self) -> Path:
        """The day's version, its MLflow run and the comparison's checks."""
        return self.training / "training.json"

    def comparison(self, extension: str) -> Path:
        """The comparison of the day's models and hand rules: md, csv, json or png."""
        return self.training / f"comparison.{extension}"

    @property
    def evaluation_gate_report(self) -> Path:
        return self.training / "evaluation_gate.json"

    def servability_report(self, extension: str = "json") -> Path:
        """The servability gate's verdict: json or md."""
        return self.export / f"servability.{extension}"

    @property
    def feature_spec(self) -> Path:
        return self.settings.warehouse / "feature_spec" / f"ds={self.ds}" / "feature_spec.json"

    @property
    def run_log(self) -> Path:
        """The full output (Airflow, Spark, dbt, training) of the day's last `edgerec run`."""
        return self.settings.home / "logs" / f"run_ds={self.ds}.log"


def write_text(path: Path, text: str) -> Path:
    """A report file, its directory made first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def write_json(path: Path, data: dict, *, sort_keys: bool = False) -> Path:
    """A JSON report (values JSON does not know, such as dates and paths, as their text)."""
    return write_text(path, json.dumps(data, indent=2, sort_keys=sort_keys, default=str) + "\n")


def read_json(path: Path) -> dict | None:
    """A report, or None when the stage that writes it has not run for the day."""
    return json.loads(path.read_text()) if path.exists() else None


def days_back(ds: str, n: int) -> list[str]:
    """ds and the n days before it, oldest first."""
    day = dt.date.fromisoformat(ds)
    return [str(day - dt.timedelta(days=i)) for i in range(n, -1, -1)]


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    environ = os.environ if environ is None else environ
    values = {
        name: environ[f"EDGEREC_{name.upper()}"]
        for name in Settings.model_fields
        if environ.get(f"EDGEREC_{name.upper()}", "") != ""
    }
    settings = build_config(Settings, values, prefix="EDGEREC_")
    raw_dir = settings.raw_dir.absolute() if settings.raw_dir else None
    return settings.model_copy(update={"home": settings.home.absolute(), "raw_dir": raw_dir})
