"""Canary analysis: what each model version the devices ran did on a day's logs, and the canary against the stable
version and against the cloud's order, each business metric's relative difference with a 95% bootstrap interval over
devices.

The figures come from the marts: `int_device_version_daily` (one row per device: the unit resampled) and its sum per
version, `rpt_version_daily`, and CTR by display position from `rpt_version_position_daily`; all are dbt's, so a
metric is defined in one place. A device runs one version a day;
the two cohorts compared are resampled independently, each with replacement.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from edgerec.config import Settings
from edgerec.contracts.policy import CLOUD_ORDER
from edgerec.reports import CanaryAnalysis

# metric -> (numerator, denominator): a ratio of sums over the cohort's devices (None: per device)
METRICS: dict[str, tuple[str, str | None]] = {
    "exposures (PV) per device": ("exposures", None),
    "clicks per device": ("clicks", None),
    "CTR": ("clicks", "exposures"),
    "item page views per device": ("page_views", None),
    "purchases per device": ("purchases", None),
    "GMV (price levels) per device": ("gmv_price_levels", None),
    "re-ranks per session": ("reranks", "sessions"),
}
COLUMNS = ("sessions", "exposures", "clicks", "page_views", "carts", "purchases", "gmv_price_levels", "reranks")
BOOTSTRAP_ROUNDS = 2000


def ratio(devices: Mapping[str, np.ndarray], metric: str) -> float:
    numerator, denominator = METRICS[metric]
    total = devices[denominator].sum() if denominator else len(devices[numerator])
    return float(devices[numerator].sum() / total) if total else float("nan")


def relative_difference(a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray], metric: str,
                        rounds: int = BOOTSTRAP_ROUNDS, seed: int = 0) -> dict[str, float]:
    """`metric` of cohort a over cohort b, less 1, and its 95% percentile interval: {value, low, high}. a and b map
    each column to one value per device. The same seed gives the same interval."""
    numerator, denominator = METRICS[metric]
    rng = np.random.default_rng(seed)

    def resampled(cohort: Mapping[str, np.ndarray]) -> np.ndarray:
        n = len(cohort[numerator])
        picks = rng.integers(0, n, size=(rounds, n))
        below = cohort[denominator][picks].sum(axis=1) if denominator else np.full(rounds, float(n))
        with np.errstate(divide="ignore", invalid="ignore"):
            return cohort[numerator][picks].sum(axis=1) / below

    with np.errstate(divide="ignore", invalid="ignore"):
        rounds_ratio = resampled(a) / resampled(b) - 1.0
    low, high = np.nanpercentile(rounds_ratio, [2.5, 97.5]) if np.isfinite(rounds_ratio).any() else (np.nan, np.nan)
    base = ratio(b, metric)
    value = ratio(a, metric) / base - 1.0 if base else float("nan")
    return {"value": value, "low": float(low), "high": float(high)}


def halves(positions: Mapping[str, np.ndarray] | None) -> dict[str, float]:
    """CTR in the first and the second half of the page, from exposures and clicks per position."""
    if positions is None or not len(positions["exposures"]):
        return {}
    half = (len(positions["exposures"]) + 1) // 2
    out = {}
    for name, part in ((f"CTR, positions 0-{half - 1}", slice(0, half)),
                       (f"CTR, positions {half}-{len(positions['exposures']) - 1}", slice(half, None))):
        shown = positions["exposures"][part].sum()
        out[name] = float(positions["clicks"][part].sum() / shown) if shown else float("nan")
    return out


def analyse(ds: str, devices: Mapping[str, Mapping[str, np.ndarray]], canary: str | None,
            stable: str | None, positions: Mapping[str, Mapping[str, np.ndarray]] | None = None) -> CanaryAnalysis:
    """The day's analysis from each cohort's per-device columns (`devices[version][column]`), the canary's and the
    stable version's ids as the channels served them that day (None: not set), and each cohort's exposures and
    clicks per display position (`positions[version]["exposures" | "clicks"]`, arrays over positions)."""
    positions = positions or {}
    versions = {version: {"devices": len(cohort["clicks"]), **{c: int(cohort[c].sum()) for c in COLUMNS},
                          **{m: ratio(cohort, m) for m in METRICS}, **halves(positions.get(version))}
                for version, cohort in sorted(devices.items())}
    comparisons = {}
    for name, base in (("stable", stable), (CLOUD_ORDER, CLOUD_ORDER)):
        if canary in devices and base in devices and base != canary:
            comparisons[f"canary vs {name}"] = {m: relative_difference(devices[canary], devices[base], m)
                                                for m in METRICS}
    by_position = {v: [round(float(c / e), 6) if e else None for e, c in zip(p["exposures"], p["clicks"], strict=True)]
                   for v, p in sorted(positions.items())}
    return CanaryAnalysis(ds=ds, canary=canary, stable=stable, versions=versions, comparisons=comparisons,
                          ctr_by_position=by_position)


def device_columns(database: Path, ds: str) -> dict[str, dict[str, np.ndarray]]:
    """Per version, the day's per-device columns of `int_device_version_daily`."""
    import duckdb

    with duckdb.connect(str(database), read_only=True) as con:
        table = con.sql(f"select model_version, {', '.join(COLUMNS)} from int_device_version_daily "
                        "where ds = cast(? as date) order by model_version, device_id", params=[ds]).to_arrow_table()
    versions = table.column("model_version").to_numpy(zero_copy_only=False)
    return {v: {c: table.column(c).to_numpy()[versions == v].astype(np.float64) for c in COLUMNS}
            for v in dict.fromkeys(versions.tolist())}


def position_columns(database: Path, ds: str) -> dict[str, dict[str, np.ndarray]]:
    """Per version, the day's exposures and clicks per display position (0 to the last shown) of
    `rpt_version_position_daily`."""
    import duckdb

    with duckdb.connect(str(database), read_only=True) as con:
        rows = con.execute("select model_version, position, exposures, clicks from rpt_version_position_daily "
                           "where ds = cast(? as date) order by model_version, position", [ds]).fetchall()
    size = max((r[1] for r in rows), default=-1) + 1
    out: dict[str, dict[str, np.ndarray]] = {}
    for version, position, exposures, clicks in rows:
        cohort = out.setdefault(version, {"exposures": np.zeros(size), "clicks": np.zeros(size)})
        cohort["exposures"][position], cohort["clicks"][position] = exposures, clicks
    return out


def plot(report: CanaryAnalysis, path: Path) -> Path:
    """Each comparison's relative differences with their intervals, one bar per metric; beside it, each version's
    CTR by display position."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    height = 0.5 + 0.45 * len(METRICS) * max(len(report.comparisons), 1)
    fig, (ax, by_position) = plt.subplots(1, 2, figsize=(14, height), gridspec_kw={"width_ratios": [3, 2]})
    labels, values, errors = [], [], [[], []]
    for name, metrics in report.comparisons.items():
        for metric, d in metrics.items():
            labels.append(f"{metric} ({name})")
            values.append(100 * d["value"])
            errors[0].append(100 * max(d["value"] - d["low"], 0.0))
            errors[1].append(100 * max(d["high"] - d["value"], 0.0))
    ax.barh(range(len(values)), values, xerr=errors, color="tab:blue", capsize=3)
    ax.set_yticks(range(len(values)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_xlabel("relative difference, % (95% bootstrap interval over devices)")
    ax.set_title(f"canary {report.canary}, ds={report.ds}", fontsize=9)
    for version, ctr in report.ctr_by_position.items():
        by_position.plot([100 * (c if c is not None else np.nan) for c in ctr], label=version, linewidth=1)
    by_position.set_xlabel("display position in the page")
    by_position.set_ylabel("CTR (%)")
    by_position.set_title("CTR by display position", fontsize=9)
    if report.ctr_by_position:
        by_position.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def canary_analysis(settings: Settings, ds: str, channels: Mapping[str, Mapping | None]) -> CanaryAnalysis:
    """Analyse the day's logs (after dbt_build) with the channels' state the devices ran under; writes the report
    and, when there is a comparison, its plot beside it."""
    versions = {name: (channels.get(name) or {}).get("version") for name in ("canary", "stable")}
    report = analyse(ds, device_columns(settings.duckdb_path, ds), versions["canary"], versions["stable"],
                     position_columns(settings.duckdb_path, ds))
    path = report.write(settings.layout(ds))
    if report.comparisons:
        plot(report, path.with_suffix(".png"))
    return report
