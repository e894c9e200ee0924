"""Pipeline settings: read once from the environment, with defaults for the embedded run.

Every variable is listed in docs/configuration.md, generated from the fields below. A bad value fails with the
variable's name and allowed range.
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.fields import FieldInfo

from edgerec.errors import ConfigError, allowed_range, build_config
from edgerec.redact import MASK, Redactor, host_only, redact_url
from edgerec.redact import install as install_redaction

REPO_ROOT = Path(__file__).resolve().parent.parent
DAGS_FOLDER = REPO_ROOT / "dags"


SECRET_URL = {"secret": "url"}  # may hold a password or a credential parameter: shown without them
SECRET_WEBHOOK = {"secret": "webhook"}  # the path is the credential: shown as scheme and host only
SECRET_KEY = {"secret": "key"}  # never shown


class Section(BaseModel):
    """One concern's settings: a field `f` of section `s` is read from the variable EDGEREC_<S>_<F>."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class SimSettings(Section):
    """Simulated world"""

    users: int = Field(300, ge=1, le=100_000_000, description="users of the simulated world of the daily DAG")
    seed: int = Field(7, ge=0, le=2**32 - 1, description="seed of the simulated world")
    corrupt_rate: float = Field(0.0, ge=0.0, le=0.5, description=(
        "share of log lines the simulator makes bad on purpose"))
    world: Literal["default", "revisit"] = Field("default", description=(
        "named simulated world: `default` (the paper's feed) or `revisit` (what public session logs have; "
        "[docs/worlds.md](worlds.md))"))
    config: Path | None = Field(None, description=(
        "JSON file with simulator knobs over the named world's, nested like `SimConfig` (`edgerec/sim/config.py`)"))


class FeatureSettings(Section):
    """Sessions, behaviour sequences and feature buckets (the Spark jobs)"""

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


# HotSpot's top tier spends CPU compiling code a small day runs a few times: measured in docs/performance.md ("The
# test suite"), the quick tier took 35-44% less CPU on a 2 MB day, the full JIT 36% less wall time on a 73 MB one
QUICK_JIT = "-XX:TieredStopAtLevel=1"
QUICK_JIT_BELOW_BYTES = 16 * 2**20  # between 2 and 73 MB, where the two cross is not measured
FULL_JIT = "-XX:TieredStopAtLevel=4"  # the JVM's default, said explicitly: an empty setting would mean `auto`
# a large day's jobs are batch work: the throughput collector took 6-15% off the 1M-line day against G1, the JVM's
# default, in four pairs run alternating (docs/performance.md, "The Spark jobs at 1M events")
THROUGHPUT_GC = "-XX:+UseParallelGC"


class SparkSettings(Section):
    """Spark"""

    master: str = Field("local[*]", description="Spark master: a cluster URL runs the same jobs there")
    shuffle_partitions: int = Field(4, ge=1, le=100_000, description=(
        "`spark.sql.shuffle.partitions` (raise it on a cluster)"))
    driver_memory: str = Field("4g", pattern=r"^[0-9]+[kmgtKMGT]?$", description=(
        "driver memory in local mode, a JVM size (`4g`, `2048m`): the JVM exits at start on any other"))
    java_options: str = Field("auto", description=(
        "JVM options of the driver and the executors (`spark.driver.extraJavaOptions`, `spark.executor."
        f"extraJavaOptions`); `auto`: the JIT's quick tier (`{QUICK_JIT}`) for a day whose raw events take under "
        f"{QUICK_JIT_BELOW_BYTES // 2**20} MB, the full JIT with the throughput collector (`{THROUGHPUT_GC}`) "
        "above, the JVM's defaults when they are not on this machine "
        "(docs/performance.md; the days of one `edgerec run` share one JVM, resolved by the largest of them here); "
        f"any other value is used as it is, e.g. `{FULL_JIT}` for the JVM's full JIT whatever the day"))

    @property
    def auto_jvm_options(self) -> bool:
        """java_options is `auto` (in any case, with any spaces): resolved by the size of the days."""
        return self.java_options.strip().lower() == "auto"

    def jvm_options(self, day_bytes: int | None) -> str:
        """java_options for a day whose raw events take day_bytes (None: not known): `auto` resolved."""
        if not self.auto_jvm_options:
            return self.java_options
        if day_bytes is None:
            return ""
        return QUICK_JIT if day_bytes < QUICK_JIT_BELOW_BYTES else THROUGHPUT_GC

    def shared_jvm_options(self, days_bytes: list[int | None]) -> str | None:
        """The java_options of one JVM that runs all these days (`edgerec run`'s days share one): `auto` resolved by
        the largest day on this machine, the quick tier only when it is small. None: nothing to resolve (a set
        value, or no day here yet: each day resolves its own, and the first day's holds)."""
        known = [size for size in days_bytes if size is not None]
        if not self.auto_jvm_options or not known:
            return None
        return self.jvm_options(max(known))


class MartSettings(Section):
    """Marts"""

    train_days: int = Field(7, ge=1, le=365, description=(
        "the train mart holds the requests of this many days before ds; the test mart those of ds"))
    sample_rate: float = Field(1.0, gt=0.0, le=1.0, description=(
        "share of users kept in both marts, chosen by `md5(user_id)` (deterministic)"))
    recall_history: int = Field(50, ge=1, le=1_000, description=(
        "the recall marts: a sample's history holds at most this many interactions before its click"))
    recall_history_days: int = Field(30, ge=1, le=365, description=(
        "the recall marts read interactions from this many days before their first train day, so that every "
        "click's history can reach this far back (the paper's user-based samples read up to 30)"))


class DbtSettings(Section):
    """dbt (the spark target's connection is read by dbt itself, `dbt/profiles.yml`)"""

    target: Literal["duckdb", "spark"] = Field("duckdb", description=(
        "dbt profile target: `duckdb` (the state directory's `warehouse.duckdb`) or `spark`"))
    spark_method: Literal["thrift", "http", "odbc", "session"] = Field("thrift", description=(
        "the spark target's connection method (`session`: in-process)"))
    spark_host: str = Field("127.0.0.1", description="the spark target's Thrift server host")
    spark_port: int = Field(10000, ge=1, le=65_535, description="the spark target's Thrift server port")
    spark_schema: str = Field("edgerec", description="the spark target's schema of the marts")


class QualitySettings(Section):
    """Data quality"""

    config: Path | None = Field(None, description="the data-quality thresholds file")
    max_bad_share: float = Field(0.01, ge=0.0, le=1.0, description="a day whose bad-row share is above this fails")


class AlertSettings(Section):
    """Alerts"""

    webhook_url: str | None = Field(None, json_schema_extra=SECRET_WEBHOOK, description=(
        "POST alerts as JSON (`text` for chat incoming webhooks, `alerts` with the fields)"))
    email_to: str | None = Field(None, description="comma-separated addresses to email alerts to")
    email_from: str = Field("edgerec@localhost", description="sender of alert emails")
    smtp_host: str = Field("127.0.0.1", description="SMTP server for alert emails")
    smtp_port: int = Field(25, ge=1, le=65_535, description="SMTP port for alert emails")


class TrainSettings(Section):
    """Training"""

    models: str = Field("all", description=(
        "comma-separated models to train "
        "(`dnn_rank,dlcm,crban_hubsm_ie,crban_hubsm_ipv,crban_huism_ie_ipv,crban_hubsm_ie_ipv`); the full model "
        "always"))
    epochs: int | None = Field(None, ge=1, le=1_000, description=(
        "most passes over the train split; early stopping on held-out requests (`TrainConfig.patience`, "
        "`validation_share`) may end sooner"))
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description=(
        "`auto` (CUDA when present, else CPU), `cpu`, `cuda`"))
    workers: int = Field(0, ge=0, le=256, description=(
        "processes training the day's models side by side on the CPU, one thread each (0: one per core, at most "
        "one per model); the weights do not depend on it"))
    config: Path | None = Field(None, description=(
        "JSON file with training knobs, fields of `TrainConfig` (`training/config.py`)"))
    warm_start: bool = Field(True, description=(
        "start each model from its weights in the champion's daily run (the last blessed version), fine-tuned at "
        "`TrainConfig.warm_start_lr`, and keep those weights unless an epoch beats them on the held-out requests; "
        "false: every day from random weights"))


class GateSettings(Section):
    """Evaluation gate"""

    min_gauc: float = Field(0.55, ge=0.0, le=1.0, description="the GAUC floor")
    tolerance: float = Field(0.002, ge=0.0, le=1.0, description="GAUC a version may lose against the champion")


class RecallSettings(Section):
    """Recall (the cloud's two-tower candidate generation, `training/recall/`)"""

    models: str = Field("pwprec_ls", description=(
        "comma-separated recall models to train and compare on both tasks (`pwprec_ls,pwprec_mi,gru4rec,sasrec,"
        "comirec_sa`) or `all`; `pwprec_ls`, the one registered, always"))

    epochs: int | None = Field(None, ge=1, le=1_000, description=(
        "passes over the recall train clicks [default: `RecallConfig.epochs`]"))
    config: Path | None = Field(None, description=(
        "JSON file with recall knobs, fields of `RecallConfig` (`training/recall/config.py`)"))
    min_recall_at_20: float = Field(0.05, ge=0.0, le=1.0, description=(
        "the recall gate's floor: Recall@20 of the registered model on the test day's clicks, each ranked among "
        "`RecallConfig.eval_negatives` sampled items"))
    tolerance: float = Field(0.01, ge=0.0, le=1.0, description=(
        "Recall@20 a recall version may lose against its champion on the same clicks and negatives"))
    candidates: int = Field(100, ge=1, le=1_000, description=(
        "candidates the paging API takes from the recall's index per page"))
    shown_limit: int = Field(3, ge=1, le=1_000, description=(
        "an item shown this many times in a session is left out of the user's recall candidates"))
    stream: str = Field("redis://127.0.0.1:6379/0?key=edgerec:events", description=(
        "the client events' stream the near-real-time consumer reads (`edgerec recall nrt`): Redis Streams, "
        "`redis://[:password@]host:port/db?key=STREAM` (the password is never printed)"))


class ServabilitySettings(Section):
    """Servability gate"""

    config: Path | None = Field(None, description=(
        "JSON file overriding the servability budgets (`training.servability.Budgets`: `requests`, "
        "`max_score_diff`, `top_k`, `max_encoding_diff`, `bundle_bytes`, `rerank_candidates`, `step_macs`, "
        "`rerank_macs`, `activation_bytes`, `device`, `device_profiles`, `step_ms`, `rerank_ms`, `timing` (`info`"
        " or `block`), `step_p99_ms`, `rerank_p99_ms`, `timing_runs`; docs/servability.md)"))


class RulesSettings(Section):
    """Business rules on the device"""

    config: Path | None = Field(None, description=(
        "JSON file of the business rules the next exported bundles carry in their manifest and the device applies "
        "after scoring (`edgerec.contracts.rules.BusinessRules`: `remove_out_of_stock`, `demote_no_image`, "
        "`category_cap`; [docs/rules.md](rules.md)); default: none"))


class ReplaySettings(Section):
    """Replay gate"""

    users: int = Field(300, ge=0, le=100_000, description=(
        "simulated users the replay gate replays the day's bundle on, on the day after ds, against the cloud's order "
        "(0: the gate judges nothing); a bundle that loses clicks with its whole 95% interval below zero is not "
        "shipped. Only with `EDGEREC_SOURCE=simulator`: external logs have no world to replay"))
    days: int = Field(1, ge=1, le=30, description="days the replay gate replays, from the day after ds")


class MlflowSettings(Section):
    """Registry (MLflow)"""

    tracking_uri: str | None = Field(None, json_schema_extra=SECRET_URL, description=(
        "an MLflow server or store; default SQLite + local artifacts in `$EDGEREC_HOME/mlflow`"))


class KvSettings(Section):
    """Key-value store of the embedding rows"""

    url: str | None = Field(None, json_schema_extra=SECRET_URL, description=(
        "`sqlite:///path`, `redis://host:6379/0[?prefix=edgerec]`, "
        "`dynamodb://table[?endpoint_url=...&region=...]`"))


class CdnSettings(Section):
    """CDN of the model files"""

    url: str | None = Field(None, json_schema_extra=SECRET_URL, description=(
        "the origin: a directory, or `s3://bucket/prefix[?endpoint_url=...&region=...]`"))


class ReleaseSettings(Section):
    """Release channels"""

    key: str | None = Field(None, json_schema_extra=SECRET_KEY, description=(
        "HMAC key that signs channel pointers; set the same secret everywhere in production"))
    actor: str | None = Field(None, description="who release actions are recorded as in the audit log")
    signing_key: Path | None = Field(None, description=(
        "Ed25519 private key (PEM) that signs each bundle's manifest at export; only the exporting host needs it"))
    trusted_keys: Path | None = Field(None, description=(
        "folder of the public keys (`<key id>.pub`, PEM) a shipped bundle may be signed with; rotating the signing "
        "key is adding its public key here first (docs/operations.md)"))
    retention_days: float = Field(7.0, ge=0.0, le=3_650, description=(
        "gc keeps versions younger than this, and always those a channel holds"))
    canary_percent: float = Field(10.0, ge=0.0, le=100.0, description=(
        "devices the daily DAG's canary promotion reaches"))
    guardrails: Path | None = Field(None, description=(
        "YAML policy of the daily canary decision (promote to stable, roll back, wait); default "
        "`deploy/guardrails.yml`"))


class ServingSettings(Section):
    """Paging API (`edgerec serve`)"""

    host: str = Field("127.0.0.1", description="interface the paging API listens on")
    port: int = Field(8080, ge=1, le=65_535, description="port the paging API listens on")
    token_key: str | None = Field(None, json_schema_extra=SECRET_KEY, description=(
        "HMAC key (at least 32 bytes) of the device tokens the paging API requires; without it the API serves "
        "loopback only"))


class RunSettings(Section):
    """Runs of the daily DAG"""

    date: dt.date = Field(dt.date(2026, 11, 3), description="last logical date of `make run`")
    days: int = Field(3, ge=1, le=366, description="days `make run` runs, ending at the run date")
    task_retries: int = Field(2, ge=0, le=10, description=(
        "Airflow retries per task (quality gates never retry: bad data stays bad)"))


class StackSettings(Section):
    """The at-scale stack on one machine (`edgerec stack run`, `make run-stack`, `pytest -m stack`)"""

    postgres_url: str = Field("postgresql://postgres@127.0.0.1:5432/postgres", json_schema_extra=SECRET_URL,
                              description=(
        "a PostgreSQL database whose user may create databases: the stack creates its throwaway databases there "
        "(Airflow's metadata, MLflow's store) and drops them when it stops"))
    timeout_s: float = Field(300.0, gt=0, le=3_600, description=(
        "how long each server of the stack may take to answer before it fails"))
    run_timeout_s: float = Field(7_200.0, gt=0, le=86_400, description=(
        "how long a DAG run on the stack may take before `edgerec stack run` gives up on it"))


class Settings(BaseModel):
    """The state directory and the raw zone, then one section per concern."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    home: Path = Field(Path(".edgerec"), description="state directory: every output of the embedded run")
    raw_dir: Path | None = Field(None, description="raw zone (`events/`, `items/`); point it at real client logs")
    source: Literal["simulator", "external"] = Field("simulator", description=(
        "`simulator`: the DAG simulates its day; `external`: logs arrive from clients and the simulate task is "
        "skipped"))
    sim: SimSettings = SimSettings()
    features: FeatureSettings = FeatureSettings()
    spark: SparkSettings = SparkSettings()
    marts: MartSettings = MartSettings()
    dbt: DbtSettings = DbtSettings()
    quality: QualitySettings = QualitySettings()
    alert: AlertSettings = AlertSettings()
    train: TrainSettings = TrainSettings()
    gate: GateSettings = GateSettings()
    recall: RecallSettings = RecallSettings()
    servability: ServabilitySettings = ServabilitySettings()
    rules: RulesSettings = RulesSettings()
    replay: ReplaySettings = ReplaySettings()
    mlflow: MlflowSettings = MlflowSettings()
    kv: KvSettings = KvSettings()
    cdn: CdnSettings = CdnSettings()
    release: ReleaseSettings = ReleaseSettings()
    serving: ServingSettings = ServingSettings()
    run: RunSettings = RunSettings()
    stack: StackSettings = StackSettings()

    def replace(self, **changes) -> Settings:
        """A copy with some settings changed: `home=path`, or a section's fields as `train={"epochs": 1}`."""
        update = {key: getattr(self, key).model_copy(update=value) if isinstance(value, dict) else value
                  for key, value in changes.items()}
        return self.model_copy(update=update)

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
    def recall_bundles_dir(self) -> Path:
        """Exported recall bundles (user tower, item embeddings, ANN index), one immutable directory per version."""
        return self.home / "recall_bundles"

    @property
    def devices_dir(self) -> Path:
        """The bundles the simulated world's devices downloaded from the CDN (deploy.fleet), one per version."""
        return self.home / "devices"

    @property
    def kv_store(self) -> str:
        """The key-value store's URL: the setting, or SQLite in the state directory."""
        return self.kv.url or f"sqlite:///{self.home / 'kv.sqlite'}"

    @property
    def cdn_origin(self) -> str:
        """The CDN origin: the setting, or a directory in the state directory."""
        return self.cdn.url or str(self.home / "cdn")

    @property
    def release_dir(self) -> Path:
        """The release audit log, deploy journals and the embedded signing key."""
        return self.home / "release"

    @property
    def signing_key_path(self) -> Path:
        return self.release.signing_key or self.release_dir / "signing" / "ed25519.pem"

    @property
    def trusted_keys_dir(self) -> Path:
        return self.release.trusted_keys or self.release_dir / "trusted"

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
    def raw_events_bytes(self) -> int | None:
        """What the day's raw events take on this machine (None: they are not here)."""
        events = self.raw_events
        if events.is_file():
            return events.stat().st_size
        return sum(f.stat().st_size for f in events.rglob("*") if f.is_file()) if events.is_dir() else None

    @property
    def jvm_options(self) -> str:
        """The Spark JVMs' options for this day (EDGEREC_SPARK_JAVA_OPTIONS, `auto` resolved by its size)."""
        return self.settings.spark.jvm_options(self.raw_events_bytes)

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

    # The day's other reports are typed records that know their own place: edgerec/reports.py.
    def comparison(self, extension: str) -> Path:
        """The comparison of the day's models and hand rules: md, csv, json or png."""
        return self.training / f"comparison.{extension}"

    @property
    def feature_spec(self) -> Path:
        return self.settings.warehouse / "feature_spec" / f"ds={self.ds}" / "feature_spec.json"

    @property
    def run_log(self) -> Path:
        """The full output (Airflow, Spark, dbt, training) of the day's last `edgerec run`."""
        return self.settings.home / "logs" / f"run_ds={self.ds}.log"


@dataclass(frozen=True)
class Variable:
    """One setting: the environment variable EDGEREC_<SECTION>_<FIELD> (EDGEREC_<FIELD> at the top level)."""

    section: str | None
    field: str
    info: FieldInfo
    model: type[BaseModel]

    @property
    def name(self) -> str:
        return f"EDGEREC_{self.section}_{self.field}".upper() if self.section else f"EDGEREC_{self.field.upper()}"

    @property
    def heading(self) -> str:
        return self.model.__doc__.strip() if self.section else "State directory and sources"

    def value(self, settings: Settings):
        return getattr(getattr(settings, self.section) if self.section else settings, self.field)

    @property
    def secret(self) -> str | None:
        """How the value may hold a credential: key, url, webhook; None when it cannot."""
        return (self.info.json_schema_extra or {}).get("secret")

    def shown(self, value) -> str:
        """The value as it may be printed: a key masked whole, a URL without its password and credential
        parameters, a webhook cut to its scheme and host."""
        if value is None or not self.secret:
            return str(value)
        if self.secret == "key":
            return MASK
        return (redact_url if self.secret == "url" else host_only)(str(value))


def variables() -> list[Variable]:
    """Every setting, the top-level ones first, then each section's in the order they are declared."""
    top, nested = [], []
    for name, info in Settings.model_fields.items():
        if isinstance(info.annotation, type) and issubclass(info.annotation, Section):
            section = info.annotation
            nested += [Variable(name, field, sub, section) for field, sub in section.model_fields.items()]
        else:
            top.append(Variable(None, name, info, Settings))
    return top + nested


def variable(name: str) -> Variable:
    return next(v for v in variables() if v.name == name)


def redactor(settings: Settings) -> Redactor:
    """Masks the values of this configuration's secret settings wherever they appear, and any URL's password."""
    secrets = {str(v.value(settings)): v.shown(v.value(settings)) for v in variables()
               if v.secret and v.value(settings) is not None}
    return Redactor({value: shown for value, shown in secrets.items() if value != shown})


# Defaults that depend on other settings or on the host, as the configuration reference states them.
COMPUTED_DEFAULTS = {
    "EDGEREC_HOME": "`./.edgerec`", "EDGEREC_RAW_DIR": "`$EDGEREC_HOME/raw`",
    "EDGEREC_QUALITY_CONFIG": "`edgerec/quality/thresholds.yml`", "EDGEREC_TRAIN_EPOCHS": "`10`",
    "EDGEREC_MLFLOW_TRACKING_URI": "SQLite and artifacts in `$EDGEREC_HOME/mlflow`",
    "EDGEREC_KV_URL": "`sqlite:///$EDGEREC_HOME/kv.sqlite`", "EDGEREC_CDN_URL": "`$EDGEREC_HOME/cdn`",
    "EDGEREC_RELEASE_KEY": "a random key in `$EDGEREC_HOME/release/release.key`",
    "EDGEREC_RELEASE_ACTOR": "`user@host`",
    "EDGEREC_RELEASE_SIGNING_KEY": "created once in `$EDGEREC_HOME/release/signing/ed25519.pem`, its public key "
                                   "trusted",
    "EDGEREC_RELEASE_TRUSTED_KEYS": "`$EDGEREC_HOME/release/trusted`",
    "EDGEREC_RUN_TASK_RETRIES": "`2` (`edgerec run`: `0`)",
}
CONFIGURATION_DOC = REPO_ROOT / "docs" / "configuration.md"


def configuration_reference() -> str:
    """docs/configuration.md, from the settings' own fields: `edgerec config docs --write` regenerates it."""
    sections: dict[str, list[str]] = {}
    for v in variables():
        default = COMPUTED_DEFAULTS.get(v.name) or ("none" if v.info.default is None else f"`{v.info.default}`")
        sections.setdefault(v.heading, []).append(
            f"| `{v.name}` | {default} | {v.info.description}{allowed_range(v.model, (v.field,))} |")
    out = ["# Configuration", "",
           "Generated from `edgerec.config.Settings` by `edgerec config docs --write`; a test fails when it is stale.",
           "", "All settings are environment variables, read once (`edgerec/config.py`): the field `f` of the section",
           "`s` (`settings.s.f` in the code) is `EDGEREC_<S>_<F>`. A bad value fails naming the variable and its",
           "allowed range; an `EDGEREC_` variable that is no setting fails naming the closest one.", ""]
    for heading, rows in sections.items():
        out += [f"## {heading}", "", "| variable | default | meaning |", "|---|---|---|", *rows, ""]
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


# Every DAG's start_date. A run for a logical date before it does nothing, and `dags test` still exits 0, so it lies
# far back: a team's first backfill is of logs from its own past. Scheduled runs start at the latest interval all
# the same (catchup=False).
DAG_START = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)


def check_logical_date(ds: str) -> str:
    """`ds` if the DAGs can run it (YYYY-MM-DD, not before DAG_START); else ConfigError naming the date and why."""
    try:
        day = dt.date.fromisoformat(ds)
    except ValueError:
        raise ConfigError(f"logical date {ds!r} is not a date of the form YYYY-MM-DD") from None
    if len(ds) != 10:
        raise ConfigError(f"logical date {ds!r} is not of the form YYYY-MM-DD")
    if day < DAG_START.date():
        raise ConfigError(f"logical date {ds} lies before the DAGs' start_date {DAG_START.date()}: Airflow would run "
                          "no task for it")
    return ds


def days_back(ds: str, n: int) -> list[str]:
    """ds and the n days before it, oldest first."""
    day = dt.date.fromisoformat(ds)
    return [str(day - dt.timedelta(days=i)) for i in range(n, -1, -1)]


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    """The settings from EDGEREC_* variables; an unknown EDGEREC_ variable is refused (a typo must not be ignored).

    Reading them installs their redactor for every log record of the process (`edgerec.redact`): whatever logs,
    the configuration's secrets never reach a log line."""
    environ = os.environ if environ is None else environ
    known = {v.name: v for v in variables()}
    unknown = sorted(k for k in environ if k.startswith("EDGEREC_") and k not in known)
    if unknown:
        def hint(name: str) -> str:  # compared without the prefix every name shares
            close = difflib.get_close_matches(name.removeprefix("EDGEREC_"), [k[8:] for k in known], 2)
            return f"{name} (did you mean {', '.join('EDGEREC_' + c for c in close)}?)" if close else name

        hints = [hint(k) for k in unknown]
        raise ConfigError(f"unknown setting: {'; '.join(hints)}; docs/configuration.md lists them all")
    top: dict = {}
    for v in known.values():
        if environ.get(v.name, "") != "":
            (top.setdefault(v.section, {}) if v.section else top)[v.field] = environ[v.name]
    for section, values in top.items():
        if isinstance(values, dict):
            model = Settings.model_fields[section].annotation
            top[section] = build_config(model, values, prefix=f"EDGEREC_{section.upper()}_")
    settings = build_config(Settings, top, prefix="EDGEREC_")
    raw_dir = settings.raw_dir.absolute() if settings.raw_dir else None
    settings = settings.model_copy(update={"home": settings.home.absolute(), "raw_dir": raw_dir})
    install_redaction(redactor(settings))
    return settings
