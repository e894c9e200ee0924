"""Pipeline settings: read once from the environment, with defaults for the embedded run.

Every variable is listed in the README. A bad value fails with the variable's name and allowed range.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from edgerec.errors import allowed_range, build_config

REPO_ROOT = Path(__file__).resolve().parent.parent
DAGS_FOLDER = REPO_ROOT / "dags"


class Settings(BaseModel):
    """One field per EDGEREC_<NAME> environment variable."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    home: Path = Field(Path(".edgerec"), description="state directory: every output of the embedded run")
    raw_dir: Path | None = Field(None, description="raw zone (`events/`, `items/`); point it at real client logs")
    source: Literal["simulator", "external"] = Field("simulator", description=(
        "`simulator`: the DAG simulates its day; `external`: logs arrive from clients and the simulate task is "
        "skipped"))
    sim_users: int = Field(300, ge=1, le=100_000_000, description="users of the simulated world of the daily DAG")
    sim_seed: int = Field(7, ge=0, le=2**32 - 1, description="seed of the simulated world")
    sim_corrupt_rate: float = Field(0.0, ge=0.0, le=0.5, description=(
        "share of log lines the simulator makes bad on purpose"))
    sim_world: Literal["default", "revisit"] = Field("default", description=(
        "named simulated world: `default` (the paper's feed) or `revisit` (what public session logs have; "
        "[docs/worlds.md](worlds.md))"))
    sim_config: Path | None = Field(None, description=(
        "JSON file with simulator knobs over the named world's, nested like `SimConfig` (`edgerec/sim/config.py`)"))
    max_bad_share: float = Field(0.01, ge=0.0, le=1.0, description="a day whose bad-row share is above this fails")
    spark_master: str = Field("local[*]", description="Spark master: a cluster URL runs the same jobs there")
    spark_shuffle_partitions: int = Field(4, ge=1, le=100_000, description=(
        "`spark.sql.shuffle.partitions` (raise it on a cluster)"))
    spark_driver_memory: str = Field("4g", description="driver memory in local mode")
    lookback_days: int = Field(3, ge=1, le=60, description=(
        "how far behaviour sequences reach back (the requests job reads these days too)"))
    session_gap_minutes: float = Field(30.0, gt=0, le=1_440, description=(
        "inactivity that splits a user's events into sessions where the client sent no session_id"))
    ie_length: int = Field(50, ge=1, le=1_000, description=(
        "IE sequence length m: the exposures a request's sequence holds, most recent first"))
    ipv_length: int = Field(30, ge=1, le=1_000, description=(
        "IPV sequence length n: the page views a request's sequence holds, most recent first"))
    trigger_k: int = Field(5, ge=1, le=100, description=(
        "client rule used where re-ranks were not logged: k unclicked exposures trigger one"))
    num_buckets: int = Field(10, ge=2, le=1_000, description="quantile buckets per bucketized feature")
    fit_days: int = Field(7, ge=1, le=365, description=(
        "the feature spec is fit on the requests of up to this many days before ds (ds itself when none exist)"))
    train_days: int = Field(7, ge=1, le=365, description=(
        "the train mart holds the requests of this many days before ds; the test mart those of ds"))
    sample_rate: float = Field(1.0, gt=0.0, le=1.0, description=(
        "share of users kept in both marts, chosen by `md5(user_id)` (deterministic)"))
    dbt_target: Literal["duckdb", "spark"] = Field("duckdb", description=(
        "dbt profile target: `duckdb` (the state directory's `warehouse.duckdb`) or `spark`"))
    # read by dbt itself (dbt/profiles.yml); declared here to be checked and documented with the rest
    dbt_spark_method: Literal["thrift", "http", "odbc", "session"] = Field("thrift", description=(
        "the spark target's connection method (`session`: in-process)"))
    dbt_spark_host: str = Field("127.0.0.1", description="the spark target's Thrift server host")
    dbt_spark_port: int = Field(10000, ge=1, le=65_535, description="the spark target's Thrift server port")
    dbt_spark_schema: str = Field("edgerec", description="the spark target's schema of the marts")
    quality_config: Path | None = Field(None, description="the data-quality thresholds file")
    alert_webhook_url: str | None = Field(None, description=(
        "POST alerts as JSON (`text` for chat incoming webhooks, `alerts` with the fields)"))
    alert_email_to: str | None = Field(None, description="comma-separated addresses to email alerts to")
    alert_email_from: str = Field("edgerec@localhost", description="sender of alert emails")
    alert_smtp_host: str = Field("127.0.0.1", description="SMTP server for alert emails")
    alert_smtp_port: int = Field(25, ge=1, le=65_535, description="SMTP port for alert emails")
    train_models: str = Field("all", description=(
        "comma-separated models to train "
        "(`dnn_rank,dlcm,crban_hubsm_ie,crban_hubsm_ipv,crban_huism_ie_ipv,crban_hubsm_ie_ipv`); the full model "
        "always"))
    train_epochs: int | None = Field(None, ge=1, le=1_000, description=(
        "most passes over the train split; early stopping on held-out requests (`TrainConfig.patience`, "
        "`validation_share`) may end sooner"))
    train_device: Literal["auto", "cpu", "cuda"] = Field("auto", description=(
        "`auto` (CUDA when present, else CPU), `cpu`, `cuda`"))
    train_workers: int = Field(0, ge=0, le=256, description=(
        "processes training the day's models side by side on the CPU, one thread each (0: one per core, at most "
        "one per model); the weights do not depend on it"))
    train_config: Path | None = Field(None, description=(
        "JSON file with training knobs, fields of `TrainConfig` (`training/config.py`)"))
    gate_min_gauc: float = Field(0.55, ge=0.0, le=1.0, description="evaluation gate: the GAUC floor")
    gate_tolerance: float = Field(0.002, ge=0.0, le=1.0, description=(
        "evaluation gate: GAUC a version may lose against the champion"))
    servability_config: Path | None = Field(None, description=(
        "JSON file overriding the servability budgets (`training.servability.Budgets`: `requests`, "
        "`max_score_diff`, `top_k`, `max_encoding_diff`, `bundle_bytes`, `rerank_candidates`, `step_macs`, "
        "`rerank_macs`, `activation_bytes`, `device`, `device_profiles`, `step_ms`, `rerank_ms`, `timing` (`info`"
        " or `block`), `step_p99_ms`, `rerank_p99_ms`, `timing_runs`; docs/servability.md)"))
    mlflow_tracking_uri: str | None = Field(None, description=(
        "an MLflow server or store; default SQLite + local artifacts in `$EDGEREC_HOME/mlflow`"))
    kv_url: str | None = Field(None, description=(
        "key-value store of the embedding rows: `sqlite:///path`, `redis://host:6379/0[?prefix=edgerec]`, "
        "`dynamodb://table[?endpoint_url=...&region=...]`"))
    cdn_url: str | None = Field(None, description=(
        "CDN origin: a directory, or `s3://bucket/prefix[?endpoint_url=...&region=...]`"))
    release_key: str | None = Field(None, description=(
        "HMAC key that signs channel pointers; set the same secret everywhere in production"))
    release_actor: str | None = Field(None, description="who release actions are recorded as in the audit log")
    release_retention_days: float = Field(7.0, ge=0.0, le=3_650, description=(
        "gc keeps versions younger than this, and always those a channel holds"))
    canary_percent: float = Field(10.0, ge=0.0, le=100.0, description=(
        "devices the daily DAG's canary promotion reaches"))
    task_retries: int = Field(2, ge=0, le=10, description=(
        "Airflow retries per task (quality gates never retry: bad data stays bad)"))
    run_date: dt.date = Field(dt.date(2026, 11, 3), description="last logical date of `make run`")
    run_days: int = Field(3, ge=1, le=366, description="days `make run` runs, ending at the run date")

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
        """The evaluation gate's verdict with its figures and reason."""
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


# The configuration reference (docs/configuration.md) is generated from the fields above: its sections, by field
# name (exact names first, then prefixes), and the defaults that the properties compute.
CONCERNS = {
    "State directory and sources": ("home", "raw_dir", "source"),
    "Simulated world": ("sim_",),
    "Raw zone and Spark jobs": ("max_bad_share", "spark_", "lookback_days", "session_gap_minutes", "ie_length",
                                "ipv_length", "trigger_k", "num_buckets", "fit_days"),
    "Marts (dbt)": ("train_days", "sample_rate", "dbt_"),
    "Data quality and alerts": ("quality_config", "alert_"),
    "Training": ("train_",),
    "Gates": ("gate_", "servability_config"),
    "Registry, deploy and release": ("mlflow_tracking_uri", "kv_url", "cdn_url", "release_", "canary_percent"),
    "Runs": ("task_retries", "run_"),
}
COMPUTED_DEFAULTS = {
    "home": "`./.edgerec`", "raw_dir": "`$EDGEREC_HOME/raw`", "quality_config": "`edgerec/quality/thresholds.yml`",
    "train_epochs": "`10`",
    "mlflow_tracking_uri": "SQLite and artifacts in `$EDGEREC_HOME/mlflow`",
    "kv_url": "`sqlite:///$EDGEREC_HOME/kv.sqlite`", "cdn_url": "`$EDGEREC_HOME/cdn`",
    "release_key": "a random key in `$EDGEREC_HOME/release/release.key`", "release_actor": "`user@host`",
    "task_retries": "`2` (`edgerec run`: `0`)",
}
CONFIGURATION_DOC = REPO_ROOT / "docs" / "configuration.md"
# settings whose values may carry a credential: a key, a password in a URL, a token in a webhook's path
SECRET_SETTINGS = ("release_key", "alert_webhook_url", "kv_url", "cdn_url", "mlflow_tracking_uri")


def shown(name: str, value) -> str:
    """A setting's value as it may be printed: a secret key masked whole, a URL cut to its scheme and host."""
    if value is None or name not in SECRET_SETTINGS:
        return str(value)
    url = urllib.parse.urlsplit(str(value))
    if name == "release_key":
        return "***"
    if not url.scheme:  # a directory (the CDN origin)
        return str(value)
    port = f":{url.port}" if url.port else ""
    hidden = "/***" if url.path.strip("/") or url.query or url.username or url.password else ""
    return f"{url.scheme}://{url.hostname or ''}{port}{hidden}"


def concern_of(name: str) -> str:
    for concern, keys in CONCERNS.items():
        if name in keys:
            return concern
    return next(concern for concern, keys in CONCERNS.items() if name.startswith(tuple(k for k in keys
                                                                                      if k.endswith("_"))))


def configuration_reference() -> str:
    """docs/configuration.md, from the settings' own fields: `edgerec config docs --write` regenerates it."""
    sections: dict[str, list[str]] = {concern: [] for concern in CONCERNS}
    for name, field in Settings.model_fields.items():
        default = COMPUTED_DEFAULTS.get(name) or ("none" if field.default is None else f"`{field.default}`")
        sections[concern_of(name)].append(f"| `EDGEREC_{name.upper()}` | {default} | {field.description}"
                                          f"{allowed_range(Settings, (name,))} |")
    out = ["# Configuration", "",
           "Generated from `edgerec.config.Settings` by `edgerec config docs --write`; a test fails when it is stale.",
           "", "All settings are environment variables, read once (`edgerec/config.py`); a bad value fails naming the",
           "variable and its allowed range.", ""]
    for concern, rows in sections.items():
        out += [f"## {concern}", "", "| variable | default | meaning |", "|---|---|---|", *rows, ""]
    out.append("Make variables: `VENV` (default `.venv`), `PYTHON` for the set-up (default `python3`, must be 3.11).")
    return "\n".join(out) + "\n"


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
