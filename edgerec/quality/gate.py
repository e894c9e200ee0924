"""Data-quality gates with Great Expectations 1.x, called from plain Python (no GX Airflow provider).

A layer (raw, features, marts) is a set of tables, each validated by its expectation suite; thresholds come
from the quality config. Results go to the GX Data Docs site in the state directory, to
reports/ds=.../quality_<layer>.json, and as alerts to the notifiers. A failing `block` check raises
QualityGateFailed, which fails the task so nothing downstream runs that day; `warn` checks only alert.
"""

from __future__ import annotations

import logging
import urllib.parse
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import duckdb
import pandas as pd
import pyarrow.parquet as pq

from edgerec.alerts import Alert
from edgerec.config import Settings, days_back
from edgerec.contracts import RERANK_TRIGGERS
from edgerec.contracts.catalog import CATALOG_ARROW_SCHEMA
from edgerec.errors import ConfigError, MissingInput
from edgerec.features import ITEM_CATEGORICAL, load_spec
from edgerec.gates import GateRefused, GateVerdict, settle
from edgerec.quality import frames
from edgerec.quality.config import Bound, DriftBound, Level, QualityConfig, load_quality_config
from edgerec.reports import QualityChecks, RawValidation, SparkSummary

log = logging.getLogger(__name__)
logging.getLogger("great_expectations").setLevel(logging.WARNING)  # its INFO lines repeat our report
LAYERS = ("raw", "features", "marts")


class QualityGateFailed(GateRefused):
    """A blocking data-quality check failed; its alerts have been sent."""


@dataclass
class Check:
    """One expectation on one table, with the level of its failure and its threshold in words."""

    name: str
    expectation: Any  # a great_expectations.expectations.Expectation
    expected: str
    level: Level = "block"
    observed: Any = None  # for one-row metric tables: the value itself, clearer than GX's unexpected list


@dataclass
class Table:
    name: str
    frame: pd.DataFrame
    checks: list[Check]


@dataclass
class CheckResult:
    layer: str
    table: str
    check: str
    level: Level
    success: bool
    observed: Any
    expected: str
    docs: str | None = None

    @property
    def name(self) -> str:
        return f"{self.layer}.{self.table}.{self.check}"

    def alert(self, ds: str) -> Alert:
        return Alert(level=self.level, check=self.name, observed=self.observed, threshold=self.expected, ds=ds,
                     docs=self.docs, source=f"quality:{self.layer}")


@dataclass
class QualityReport:
    layer: str
    ds: str
    results: list[CheckResult] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    metrics: dict = field(default_factory=dict)
    docs_index: str | None = None

    @property
    def failures(self) -> list[CheckResult]:
        return [r for r in self.results if not r.success]

    @property
    def blocking(self) -> list[CheckResult]:
        return [r for r in self.failures if r.level == "block"]

    def to_dict(self) -> dict:
        return {"layer": self.layer, "ds": self.ds, "passed": not self.blocking,
                "checks": len(self.results), "failed_block": len(self.blocking),
                "failed_warn": len(self.failures) - len(self.blocking), "docs_index": self.docs_index,
                "skipped": self.skipped, "results": [asdict(r) for r in self.results], "metrics": self.metrics}

    def gate_verdict(self, path) -> GateVerdict:
        """Refused when a blocking check failed; every failed check, warnings too, is an alert."""
        names = ", ".join(r.name for r in self.blocking)
        summary = (f"data quality {self.layer} ds={self.ds} blocked by {len(self.blocking)} check(s): {names}; "
                   f"report {path}; data docs {self.docs_index}" if self.blocking else
                   f"data quality {self.layer} ds={self.ds} passed; report {path}")
        return GateVerdict(f"quality_{self.layer}", self.ds, not self.blocking, summary,
                           tuple(r.alert(self.ds) for r in self.failures), blocks_day=True)

    def render(self) -> str:
        verdict = "BLOCKED" if self.blocking else "passed"
        lines = [f"quality {self.layer} ds={self.ds}: {verdict}, {len(self.results)} checks, "
                 f"{len(self.blocking)} blocking and {len(self.failures) - len(self.blocking)} warning failures"]
        lines += [f"  {'FAIL' if not r.success else 'ok  '} [{r.level}] {r.name}: observed {r.observed}, "
                  f"expected {r.expected}" for r in self.results if not r.success]
        lines += [f"  skipped: {s}" for s in self.skipped]
        lines.append(f"  data docs: {self.docs_index}")
        return "\n".join(lines)


# --- expectations --------------------------------------------------------------------------------------

def _gxe():
    import great_expectations.expectations as gxe

    return gxe


def _severity(level: Level) -> str:
    return "critical" if level == "block" else "warning"


def columns_check(expected: list[str]) -> Check:
    return Check("schema", _gxe().ExpectTableColumnsToMatchSet(column_set=expected, exact_match=False),
                 f"columns include {', '.join(expected)}")


def unique_check(column: str, name: str | None = None) -> Check:
    return Check(name or f"{column}_unique", _gxe().ExpectColumnValuesToBeUnique(column=column), "unique")


def not_null_check(column: str) -> Check:
    return Check(f"{column}_not_null", _gxe().ExpectColumnValuesToNotBeNull(column=column), "no nulls")


def range_check(column: str, low: float | None, high: float | None, name: str | None = None,
                level: Level = "block") -> Check:
    expected = Bound(min=low, max=high, level=level).text()
    return Check(name or f"{column}_range", _gxe().ExpectColumnValuesToBeBetween(
        column=column, min_value=low, max_value=high), expected, level)


def set_check(column: str, values: list[str]) -> Check:
    return Check(f"{column}_values", _gxe().ExpectColumnValuesToBeInSet(column=column, value_set=values),
                 f"one of {', '.join(values)}")


def before_check(name: str, earlier: str, later: str, or_equal: bool = False) -> Check:
    """later > earlier row by row (ignoring rows where either is null)."""
    return Check(name, _gxe().ExpectColumnPairValuesAToBeGreaterThanB(
        column_A=later, column_B=earlier, or_equal=or_equal, ignore_row_if="either_value_is_missing"),
        f"{earlier} {'<=' if or_equal else '<'} {later}")


def metric_checks(metrics: dict[str, float], bounds: dict[str, Bound]) -> list[Check]:
    checks = []
    for name, bound in bounds.items():
        check = range_check(name, bound.min, bound.max, name=name, level=bound.level)
        check.observed = _round(metrics[name])
        checks.append(check)
    return checks


def drift_checks(changes: dict[str, float], bounds: dict[str, DriftBound]) -> list[Check]:
    checks = []
    for name, value in changes.items():
        bound = bounds[name.split(":")[0]]
        for level, limit in (("warn", bound.warn), ("block", bound.block)):
            if limit is not None:
                check = range_check(name, None, limit, name=f"{name}<={level}", level=level)
                check.observed = _round(value)
                checks.append(check)
    return checks


def _round(value: Any) -> Any:
    return round(value, 6) if isinstance(value, float) else value


# --- the layers ----------------------------------------------------------------------------------------

def _history(settings: Settings, ds: str, layer: str, days: int) -> list[dict]:
    """Metrics of earlier passed quality reports of this layer (up to `days` days before ds): a blocked day
    is not part of the baseline, so one bad day does not move what normal looks like."""
    reports = [QualityChecks.read(settings.layout(day), layer=layer) for day in days_back(ds, days)[:-1]]
    return [r.metrics for r in reports if r and r.passed and r.metrics]


def full_lookback(settings: Settings, ds: str) -> bool:
    """Whether the requests of ds saw every day of their lookback window (the Spark summary says)."""
    summary = SparkSummary.read(settings.layout(ds))
    return summary is not None and len(summary.event_days_read) >= settings.features.lookback_days + 1


def raw_tables(settings: Settings, ds: str, cfg: QualityConfig) -> tuple[list[Table], dict, list[str]]:
    day = settings.layout(ds)
    validation = RawValidation.read(day)
    if validation is None:
        raise MissingInput(f"no raw validation report for ds={ds} at {RawValidation.path(day)}; run validate_raw "
                           "first")
    metrics = {"events": validation.good, "bad_share": validation.bad / max(validation.rows, 1)}
    items = pq.read_table(day.raw_items).to_pandas()
    if not (settings.dataset("events") / f"ds={ds}").exists():
        raise MissingInput(f"no ingested events for ds={ds} in {settings.dataset('events')}; run the Spark jobs")
    with duckdb.connect() as con:
        request_users = frames.request_user_frame(con, frames.parquet_relation(settings.dataset("events"), ds))
    checks = cfg.raw
    tables = [
        Table("items", items, [columns_check(CATALOG_ARROW_SCHEMA.names), unique_check("item_id"),
                               *[range_check(c, 0, None) for c in ITEM_CATEGORICAL],
                               range_check("ctr_score", 0, 1), range_check("cvr_score", 0, 1)]),
        Table("events", request_users, [unique_check("request_id", name="request_id_of_one_user")]),
        Table("day", pd.DataFrame([metrics]), metric_checks(metrics, {"events": checks.events,
                                                                       "bad_share": checks.bad_share})),
    ]
    history = _history(settings, ds, "raw", cfg.baseline_days)
    skipped = [] if history else ["raw.drift: no earlier days to compare with"]
    if history:
        baseline = sum(h["events"] for h in history) / len(history)
        changes = {"event_volume_change": frames.relative_change(metrics["events"], baseline)}
        tables.append(Table("drift", pd.DataFrame([changes]),
                            drift_checks(changes, {"event_volume_change": checks.event_volume_change})))
    return tables, metrics, skipped


def _request_checks(spec: dict) -> list[Check]:
    lengths = spec["sequence_lengths"]
    return [unique_check("rerank_id"), not_null_check("rerank_id"), not_null_check("trigger_ts"),
            set_check("trigger", list(RERANK_TRIGGERS)),
            range_check("n_candidates", 1, lengths["candidates"]),
            range_check("ie_length", 0, lengths["ie"]), range_check("ipv_length", 0, lengths["ipv"]),
            range_check("candidate_lists_parallel", 1, 1, name="candidate_lists_parallel"),
            before_check("no_ie_leakage", "max_ie_ts", "trigger_ts"),
            before_check("no_ipv_leakage", "max_ipv_end_ts", "trigger_ts", or_equal=True)]


def features_tables(settings: Settings, ds: str, cfg: QualityConfig) -> tuple[list[Table], dict, list[str]]:
    spec = load_spec(settings.layout(ds).feature_spec)
    relation = frames.parquet_relation(settings.dataset("features"), ds)
    if not (settings.dataset("features") / f"ds={ds}").exists():
        raise MissingInput(f"no features for ds={ds} in {settings.dataset('features')}; run the Spark jobs")
    checks = cfg.features
    with duckdb.connect() as con:
        columns = frames.columns_of(con, relation)
        schema = Table("schema", frames.schema_frame(columns), [columns_check(list(frames.FEATURE_COLUMNS))])
        missing = sorted(set(frames.FEATURE_COLUMNS) - set(columns))
        if missing:  # the other tables cannot be computed; the schema check names what is missing
            return [schema], {}, [f"features: every check but the schema (missing columns: {', '.join(missing)})"]
        requests = frames.request_frame(con, relation)
        codes = frames.code_frame(con, relation, spec)
        histograms = frames.code_histograms(con, relation, spec, checks.histogram_max_codes)
    metrics = frames.day_metrics(requests) | {"histograms": histograms}
    tables = [
        schema,
        Table("requests", requests, [*_request_checks(spec), set_check("ds", [ds])]),
        Table("codes", codes, [range_check("min_code", 0, None),
                               before_check("codes_within_vocabulary", "max_code", "vocab_size")]),
        Table("day", pd.DataFrame([{k: v for k, v in metrics.items() if k != "histograms"}]),
              metric_checks(metrics, {"requests": checks.requests, "label_rate": checks.label_rate,
                                      "labelled_share": checks.labelled_share})),
    ]
    # Sequence features (ie_*, ipv_*) shift while the lookback window still fills after a cold start (older
    # events, longer sequences): they are compared only between days whose windows were full.
    metrics["full_lookback"] = full_lookback(settings, ds)
    history = _history(settings, ds, "features", cfg.baseline_days)
    changes, skipped = {}, []

    def comparable(feature: str, day: dict) -> bool:
        enough = sum(day["histograms"].get(feature, {}).values()) >= checks.histogram_min_count
        return enough and (feature.startswith("cand_") or day.get("full_lookback", False))

    for feature, histogram in histograms.items():
        past = [h["histograms"][feature] for h in history if comparable(feature, h)]
        if past and comparable(feature, metrics):
            changes[f"histogram_psi:{feature}"] = frames.psi(histogram, frames.mean_histogram(past))
    if not metrics["full_lookback"]:
        skipped.append(f"features.drift of sequence features: the {settings.features.lookback_days}-day lookback "
                       f"window of ds={ds} is not full yet")
    if changes:
        tables.append(Table("drift", pd.DataFrame([changes]),
                            drift_checks(changes, {"histogram_psi": checks.histogram_psi})))
    else:
        skipped.append("features.drift: no earlier days with enough elements to compare with")
    return tables, metrics, skipped


MART_STATS = ("requests", "ctr", "mean_ie_length")


def marts_tables(settings: Settings, ds: str, cfg: QualityConfig) -> tuple[list[Table], dict, list[str]]:
    spec = load_spec(settings.layout(ds).feature_spec)
    checks = cfg.marts
    if settings.dbt.target != "duckdb":
        raise ConfigError(f"the marts gate reads the duckdb target; EDGEREC_DBT_TARGET={settings.dbt.target} "
                          "marts are not checked by it yet")
    if not settings.duckdb_path.exists():
        raise MissingInput(f"no marts database at {settings.duckdb_path}; run `edgerec dbt build` first")
    with duckdb.connect(str(settings.duckdb_path), read_only=True) as con:
        # the features' columns but origin (staging renames it), plus the split's own
        required = [*(c for c in frames.FEATURE_COLUMNS if c != "origin"), "split", "n_labelled", "n_clicks"]
        schemas = {name: frames.columns_of(con, name) for name in ("fct_train_requests", "fct_test_requests")}
        tables = [Table(f"{name}_schema", frames.schema_frame(cols), [columns_check(required)])
                  for name, cols in schemas.items()]
        if any(set(required) - set(cols) for cols in schemas.values()):
            return tables, {}, ["marts: every check but the schemas (columns missing)"]
        train = frames.request_frame(con, "fct_train_requests")
        test = frames.request_frame(con, "fct_test_requests")
        # Both splits are encoded with ds's spec (the train days again, by ds's bucketize): codes fit its vocabularies.
        parts = [frames.code_frame(con, name, spec).assign(table=name)
                 for name in ("fct_train_requests", "fct_test_requests")]
        # an empty split has no codes (all-NA bounds): leave it out rather than concatenate NA columns
        codes = pd.concat([p for p in parts if p["min_code"].notna().any()] or parts)
        stats = con.execute(f"select cast(ds as varchar) as ds, {', '.join(MART_STATS)} from rpt_daily_stats "
                            f"where ds between cast('{days_back(ds, cfg.baseline_days)[0]}' as date) "
                            f"and cast('{ds}' as date) order by ds").df()
    window = days_back(ds, settings.marts.train_days)[:-1]
    test_day = frames.day_metrics(test)
    metrics = {"train_requests": len(train), "test_requests": len(test), "test_label_rate": test_day["label_rate"]}
    tables += [
        Table("fct_train_requests", train, [*_request_checks(spec), set_check("ds", window),
                                            range_check("n_labelled", 1, None)]),
        Table("fct_test_requests", test, [*_request_checks(spec), set_check("ds", [ds]),
                                          range_check("n_labelled", 1, None)]),
        Table("codes", codes.dropna(subset=["max_code"]), [
            range_check("min_code", 0, None), before_check("codes_within_vocabulary", "max_code", "vocab_size")]),
        Table("day", pd.DataFrame([metrics]), metric_checks(metrics, {
            "train_requests": checks.train_requests, "test_requests": checks.test_requests,
            "test_label_rate": checks.test_label_rate})),
    ]
    tables += recall_tables(settings, ds, window)
    blocked = [d for d in stats.ds if (r := QualityChecks.read(settings.layout(d), layer="marts")) and not r.passed]
    today, before = stats[stats.ds == ds], stats[(stats.ds < ds) & ~stats.ds.isin(blocked)]
    skipped: list[str] = []
    if len(today) and len(before):
        baseline = before[list(MART_STATS)].mean()
        row = today.iloc[0]
        changes = {"request_volume_change": frames.relative_change(row["requests"], baseline["requests"]),
                   "ctr_change": frames.relative_change(row["ctr"], baseline["ctr"])}
        full = [d for d in before.ds if full_lookback(settings, d)]
        if full and full_lookback(settings, ds):  # sequences grow while the lookback window fills
            changes["mean_ie_length_change"] = frames.relative_change(
                row["mean_ie_length"], before[before.ds.isin(full)]["mean_ie_length"].mean())
        else:
            skipped.append("marts.drift.mean_ie_length_change: lookback windows not full yet")
        metrics |= {"baseline_days": list(before.ds)}
        tables.append(Table("drift", pd.DataFrame([changes]), drift_checks(changes, {
            "request_volume_change": checks.request_volume_change, "ctr_change": checks.ctr_change,
            "mean_ie_length_change": checks.mean_ie_length_change})))
    else:
        skipped.append("marts.drift: rpt_daily_stats has no earlier days to compare with")
    return tables, metrics, skipped


RECALL_COLUMNS = ("user_id", "target_item", "ts", "last_history_ts", "history_length", "session_history")


def recall_tables(settings: Settings, ds: str, window: list[str]) -> list[Table]:
    """The recall model's samples (fct_recall_train, fct_recall_test): present with their columns, complete,
    bounded, no history after its click, each split on its days; and its users' latest histories
    (fct_recall_users), present, complete and bounded."""
    longest = int(settings.marts.recall_history)
    required = [*RECALL_COLUMNS, "ds"]

    def checks(days: list[str]) -> list[Check]:  # a suite's expectations are its own: new ones for each table
        return [not_null_check("user_id"), not_null_check("target_item"), range_check("history_length", 1, longest),
                before_check("session_within_history", "session_history", "history_length", or_equal=True),
                before_check("no_recall_history_leakage", "last_history_ts", "ts", or_equal=True),
                set_check("ds", days)]

    tables = []
    with duckdb.connect(str(settings.duckdb_path), read_only=True) as con:
        present = {row[0] for row in con.execute("select table_name from information_schema.tables").fetchall()}
        for split, days in (("train", window), ("test", [ds])):
            name = f"fct_recall_{split}"
            columns = frames.columns_of(con, name) if name in present else []
            if set(required) - set(columns):  # missing (or an older build): the schema check names what is missing
                tables.append(Table(f"{name}_schema", frames.schema_frame(columns), [columns_check(required)]))
                continue
            rows = con.execute(f"select {', '.join(RECALL_COLUMNS)}, cast(ds as varchar) as ds from {name}").df()
            tables.append(Table(name, rows, checks(days)))
        name, user_columns = "fct_recall_users", ["user_id", "history_length"]
        columns = frames.columns_of(con, name) if name in present else []
        if set(user_columns) - set(columns):
            tables.append(Table(f"{name}_schema", frames.schema_frame(columns), [columns_check(user_columns)]))
        else:
            rows = con.execute(f"select user_id, history_length from {name}").df()
            tables.append(Table(name, rows, [not_null_check("user_id"), range_check("history_length", 1, longest)]))
    return tables


TABLE_BUILDERS: dict[str, Callable[[Settings, str, QualityConfig], tuple[list[Table], dict, list[str]]]] = {
    "raw": raw_tables, "features": features_tables, "marts": marts_tables}


# --- running the suites --------------------------------------------------------------------------------

def _context(settings: Settings):
    """The GX file context in HOME/gx (Data Docs under gx/uncommitted/data_docs), without progress bars."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="file", project_root_dir=str(settings.home))
    bars = context.variables.progress_bars
    if bars is None or (bars.get("globally", True) if isinstance(bars, dict) else bars.globally):
        context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
        context.variables.save()
    return context


def _batch_definition(context, table: str):
    source = context.data_sources.add_or_update_pandas(name="edgerec")
    try:
        asset = source.get_asset(table)
    except LookupError:
        asset = source.add_dataframe_asset(name=table)
    try:
        return asset.get_batch_definition("whole")
    except KeyError:
        return asset.add_batch_definition_whole_dataframe("whole")


def _observed(result) -> Any:
    """What a GX expectation result saw, in a sentence an on-call engineer can act on."""
    res = result.result or {}
    info = result.exception_info or {}
    infos = [info] if "raised_exception" in info else list(info.values())
    errors = [i.get("exception_message") for i in infos if isinstance(i, dict) and i.get("raised_exception")]
    if errors:
        return errors[0]
    mismatched = (res.get("details") or {}).get("mismatched")
    if mismatched:
        return "missing columns: " + ", ".join(mismatched.get("missing") or []) if mismatched.get("missing") \
            else f"columns differ: {mismatched}"
    if res.get("unexpected_count") is not None:
        # each value once: a uniqueness check lists every copy of a repeated value
        sample = ", ".join(list(dict.fromkeys(str(v) for v in res.get("partial_unexpected_list") or []))[:3])
        return (f"{res['unexpected_count']:,} of {res.get('element_count', 0):,} rows"
                + (f" (e.g. {sample})" if sample and res["unexpected_count"] else ""))
    return _round(res.get("observed_value"))


def validate_tables(settings: Settings, layer: str, ds: str, tables: list[Table]) -> tuple[list[CheckResult], str]:
    """Run each table's suite with GX, build the Data Docs; one result per check, with its Data Docs page."""
    import great_expectations as gx
    from great_expectations.core.expectation_suite import ExpectationSuite
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    context = _context(settings)
    run_id = RunIdentifier(run_name=f"{layer}-{ds}")
    pending = []
    for table in tables:
        name = f"{layer}.{table.name}"
        for check in table.checks:
            check.expectation.meta = {"check": check.name, "level": check.level, "expected": check.expected}
            check.expectation.severity = _severity(check.level)
        suite = context.suites.add_or_update(ExpectationSuite(name=name, expectations=[
            c.expectation for c in table.checks]))
        definition = context.validation_definitions.add_or_update(
            gx.ValidationDefinition(name=name, data=_batch_definition(context, name), suite=suite))
        result = definition.run(batch_parameters={"dataframe": table.frame}, result_format="SUMMARY", run_id=run_id)
        pending.append((table, result))
    index = context.build_data_docs()["local_site"]
    results = []
    for table, result in pending:
        identifier = ValidationResultIdentifier(
            expectation_suite_identifier=ExpectationSuiteIdentifier(name=result.suite_name),
            run_id=result.meta["run_id"], batch_identifier=result.batch_id)
        page = context.get_docs_sites_urls(resource_identifier=identifier)[0]["site_url"]
        by_check = {r.expectation_config.meta["check"]: r for r in result.results}
        for check in table.checks:
            r = by_check[check.name]
            observed = check.observed if check.observed is not None and not r.exception_info.get(
                "raised_exception") else _observed(r)
            results.append(CheckResult(layer, table.name, check.name, check.level, bool(r.success), observed,
                                       check.expected, _path(page)))
    return results, _path(index)


def _path(url: str) -> str:
    return urllib.parse.unquote(url.removeprefix("file://"))


def run_quality(settings: Settings, ds: str, layer: str, config: QualityConfig | None = None,
                notify: bool = True) -> QualityReport:
    """Validate one layer for ds; alerts for every failure; QualityGateFailed if a blocking check failed."""
    if layer not in TABLE_BUILDERS:
        raise ConfigError(f"unknown quality layer {layer!r}; choose one of {', '.join(LAYERS)}")
    config = config or load_quality_config(settings.quality.config)
    tables, metrics, skipped = TABLE_BUILDERS[layer](settings, ds, config)
    results, index = validate_tables(settings, layer, ds, tables)
    report = QualityReport(layer, ds, results, skipped, metrics, index)
    path = QualityChecks(**report.to_dict()).write(settings.layout(ds))
    log.info("%s", report.render())
    settle(settings, report.gate_verdict(path), notify, refusal=QualityGateFailed)
    return report

