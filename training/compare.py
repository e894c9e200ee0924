"""The comparison table of the paper's Table 2 on our test set: GAUC with its bootstrap interval, the relative
gain over DLCM with a paired bootstrap interval, NDCG@k and clicks@k against the initial order; written as
markdown, CSV and a bar-chart PNG, and checked against the paper's order.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from training.evaluation import Interval, RankingReport, paired_gain
from training.models import BASELINE, FULL_MODEL, MODELS, PAPER_GAUC

KS = (5, 10)


@dataclass(frozen=True)
class Row:
    name: str
    title: str
    report: RankingReport
    gain: Interval  # relative GAUC gain over the baseline, paired bootstrap

    @property
    def paper_gain(self) -> float:
        return PAPER_GAUC[self.name] / PAPER_GAUC[BASELINE] - 1.0


@dataclass(frozen=True)
class Comparison:
    rows: list[Row]  # in the paper's order
    checks: dict[str, bool]  # the paper's order and separations, each named

    def row(self, name: str) -> Row:
        return next(r for r in self.rows if r.name == name)

    def to_markdown(self) -> str:
        first = self.rows[0].report
        lines = [
            "| model | GAUC [95% CI] | gain vs DLCM [95% CI] | "
            + " | ".join(f"NDCG@{k} | clicks@{k}" for k in KS) + " | paper GAUC | paper gain |",
            "|---|---|---|" + "---|---|" * len(KS) + "---|---|",
        ]
        for r in self.rows:
            rep = r.report
            lines.append(
                f"| {r.title} | {rep.gauc} | {r.gain.value:+.2%} [{r.gain.low:+.2%}, {r.gain.high:+.2%}] | "
                + " | ".join(f"{rep.ndcg[k]:.4f} | {rep.clicks[k]:.3f}" for k in KS)
                + f" | {PAPER_GAUC[r.name]:.5f} | {r.paper_gain:+.2%} |")
        lines.append(f"| initial order | {first.gauc_initial:.5f} | | " + " | ".join(
            f"{first.ndcg_initial[k]:.4f} | {first.clicks_initial[k]:.3f}" for k in KS) + " | | |")
        lines.append("")
        lines.append(f"{first.requests:,} test requests with both labels (GAUC, Eq. 12); {first.skipped:,} with one "
                     "label class skipped. NDCG@k and clicks@k over the labelled candidates of each request.")
        lines.append("")
        lines.extend(f"- {'yes' if ok else 'NO '} {check}" for check, ok in self.checks.items())
        return "\n".join(lines) + "\n"

    def to_records(self) -> list[dict]:
        records = []
        for r in self.rows:
            rep = r.report
            record = {"model": r.name, "title": r.title, "gauc": rep.gauc.value, "gauc_low": rep.gauc.low,
                      "gauc_high": rep.gauc.high, "gain_vs_dlcm": r.gain.value, "gain_low": r.gain.low,
                      "gain_high": r.gain.high, "requests": rep.requests, "skipped": rep.skipped}
            for k in KS:
                record |= {f"ndcg@{k}": rep.ndcg[k], f"ndcg@{k}_initial": rep.ndcg_initial[k],
                           f"clicks@{k}": rep.clicks[k], f"clicks@{k}_initial": rep.clicks_initial[k]}
            records.append(record | {"gauc_initial_order": rep.gauc_initial, "paper_gauc": PAPER_GAUC[r.name],
                                     "paper_gain": r.paper_gain})
        return records

    def write(self, directory: Path) -> dict[str, Path]:
        """comparison.md, comparison.csv, comparison.json and comparison.png in directory."""
        directory.mkdir(parents=True, exist_ok=True)
        paths = {ext: directory / f"comparison.{ext}" for ext in ("md", "csv", "json", "png")}
        paths["md"].write_text(self.to_markdown())
        records = self.to_records()
        with paths["csv"].open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(records[0]))
            writer.writeheader()
            writer.writerows(records)
        paths["json"].write_text(json.dumps({"rows": records, "checks": self.checks}, indent=2) + "\n")
        self.plot(paths["png"])
        return paths

    def plot(self, path: Path) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        titles = [r.title.replace("+", "+\n", 1) for r in self.rows]
        x = np.arange(len(self.rows))
        fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.8))
        gauc = np.array([r.report.gauc.value for r in self.rows])
        errors = np.array([[g - r.report.gauc.low, r.report.gauc.high - g] for g, r in zip(gauc, self.rows,
                                                                                        strict=True)]).T
        left.bar(x, gauc, yerr=errors, capsize=4, color="#4c72b0")
        low = float(np.nanmin([r.report.gauc.low for r in self.rows]))
        left.set_ylim(max(0.0, low - 0.02), min(1.0, float(np.nanmax(gauc)) + 0.02))
        left.set_title("GAUC on the test day (95% bootstrap interval)")
        gains = np.array([r.gain.value for r in self.rows]) * 100
        gain_err = np.array([[r.gain.value - r.gain.low, r.gain.high - r.gain.value] for r in self.rows]).T * 100
        width = 0.4
        right.bar(x - width / 2, gains, width, yerr=gain_err, capsize=3, label="this run", color="#4c72b0")
        right.bar(x + width / 2, [r.paper_gain * 100 for r in self.rows], width, label="paper (Table 2)",
                  color="#dd8452")
        right.axhline(0, color="black", linewidth=0.8)
        right.set_title("relative GAUC gain over DLCM, %")
        right.legend()
        for axis in (left, right):
            axis.set_xticks(x, titles, fontsize=8)
            axis.grid(axis="y", alpha=0.3)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)


def compare(reports: dict[str, RankingReport], rounds: int = 200, seed: int = 0) -> Comparison:
    """Rows in the paper's order for the models present; gains against DLCM when it was trained."""
    names = [n for n in MODELS if n in reports]
    base = reports.get(BASELINE)
    rows = [Row(n, MODELS[n].title, reports[n],
                paired_gain(reports[n].per_request, base.per_request, rounds, seed) if base
                else Interval(float("nan"), float("nan"), float("nan"))) for n in names]
    return Comparison(rows, order_checks(reports, rounds, seed))


def order_checks(reports: dict[str, RankingReport], rounds: int = 200, seed: int = 0) -> dict[str, bool]:
    """The paper's order: DNN-rank < DLCM < each CRBAN variant < the full model, each gap with a paired
    bootstrap interval that excludes zero; DLCM not below the initial order it re-ranks, its paired interval
    reaching zero (else a gain over it measures a baseline that failed to learn the list; DLCM reads the cloud's
    features only, so matching the list order within noise is what learning it looks like); and the full model
    at least +2% over DLCM."""
    checks: dict[str, bool] = {}

    def above(better: str, worse: str) -> None:
        if better in reports and worse in reports:
            gap = paired_gain(reports[better].per_request, reports[worse].per_request, rounds, seed)
            checks[f"{MODELS[better].title} > {MODELS[worse].title}, interval above 0 "
                   f"({gap.value:+.2%} [{gap.low:+.2%}, {gap.high:+.2%}])"] = gap.low > 0

    variants = [n for n in MODELS if n not in ("dnn_rank", BASELINE, FULL_MODEL)]
    above(BASELINE, "dnn_rank")
    for variant in variants:
        above(variant, BASELINE)
        above(FULL_MODEL, variant)
    if BASELINE in reports:
        base = reports[BASELINE]
        gap = paired_gain(base.per_request, base.per_request_initial, rounds, seed)
        checks[f"{MODELS[BASELINE].title} not below the initial order's GAUC, interval reaches 0 "
               f"({base.gauc.value:.5f} vs {base.gauc_initial:.5f}: {gap.value:+.2%} [{gap.low:+.2%}, "
               f"{gap.high:+.2%}])"] = gap.high >= 0
    if FULL_MODEL in reports and BASELINE in reports:
        gain = paired_gain(reports[FULL_MODEL].per_request, reports[BASELINE].per_request, rounds, seed)
        checks[f"{MODELS[FULL_MODEL].title} >= +2% over DLCM ({gain.value:+.2%})"] = gain.value >= 0.02
    return checks
