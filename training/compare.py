"""The comparison table of the paper's Table 2 on our test set: GAUC with its bootstrap interval, the relative
gain over DLCM with a paired bootstrap interval, NDCG@k and clicks@k against the initial order, the hand rules'
rows (training.rules) beside the models', each model's validation GAUC per epoch; written as markdown, CSV and a
bar-chart PNG, and checked against the paper's order, the hand rules, the models that see a subset of a model's
inputs, and collapse onto the list order.
"""

from __future__ import annotations

import csv
import json
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from training.evaluation import Interval, RankingReport, paired_gain
from training.models import BASELINE, FULL_MODEL, MODELS, PAPER_GAUC
from training.models.base import HEADS
from training.rules import RULES

KS = (5, 10)
GMV_K = 10


def _gmv(by_k: dict[int, float]) -> str:
    return f"{by_k[GMV_K]:.3f}" if GMV_K in by_k else ""


def _gain(gain: Interval) -> str:
    """A gain over DLCM with its interval; blank where DLCM was not trained."""
    return "" if np.isnan(gain.value) else f"{gain.value:+.2%} [{gain.low:+.2%}, {gain.high:+.2%}]"


# A validation GAUC within this of the initial order's is the list order itself (scores monotone in the position)
COLLAPSE_TOLERANCE = 1e-6
# "DLCM not below the initial order": its paired interval's lower end within this relative margin of it or above
EQUIVALENCE_MARGIN = 0.001
# Models whose inputs are a subset of another's: (the one that sees more, the one that sees less)
SUBSETS = (("dlcm", "dnn_rank"), (FULL_MODEL, BASELINE), (FULL_MODEL, "crban_hubsm_ie"),
           (FULL_MODEL, "crban_hubsm_ipv"))
NAN = Interval(float("nan"), float("nan"), float("nan"))


def write_csv(path: Path, records: list[dict]) -> None:
    """Rows of one shape as a CSV file with a header."""
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(records[0]))
        writer.writeheader()
        writer.writerows(records)


@dataclass(frozen=True)
class Row:
    name: str
    title: str
    report: RankingReport
    gain: Interval  # relative GAUC gain over the baseline, paired bootstrap

    @property
    def paper_gauc(self) -> float | None:
        """The paper's Table 2 figure; None for a hand rule."""
        return PAPER_GAUC.get(self.name)

    @property
    def paper_gain(self) -> float | None:
        return None if self.paper_gauc is None else self.paper_gauc / PAPER_GAUC[BASELINE] - 1.0


@dataclass(frozen=True)
class Curves:
    """Each model's validation GAUC per epoch (held-out users of the train window) and the initial order's there."""

    by_model: dict[str, list[float]]
    initial: float

    def collapsed(self, name: str) -> bool:
        """The model's validation GAUC stays at the initial order's from its second epoch on: it learned the list
        order and nothing else (one epoch alone is not judged)."""
        curve = self.by_model.get(name, [])
        return len(curve) > 1 and all(abs(g - self.initial) <= COLLAPSE_TOLERANCE for g in curve[1:])

    def to_markdown(self) -> list[str]:
        lines = [f"Validation GAUC per epoch (held-out users; the initial order there: {self.initial:.5f}):", ""]
        for name, curve in self.by_model.items():
            mark = " **collapsed onto the list order**" if self.collapsed(name) else ""
            lines.append(f"- {MODELS[name].title}: {', '.join(f'{g:.5f}' for g in curve)}{mark}")
        return lines


@dataclass(frozen=True)
class Comparison:
    rows: list[Row]  # the models in the paper's order, then the hand rules
    checks: dict[str, bool]  # the paper's order and separations, the rules, subsets and collapse, each named
    curves: Curves | None = None
    notes: tuple[str, ...] = ()  # what the reader must know about the inputs (`input_notes`)
    explored: tuple[Row, ...] = ()  # the models on the exploration bucket's test requests, when there are any

    def row(self, name: str) -> Row:
        return next(r for r in self.rows if r.name == name)

    def to_markdown(self) -> str:
        first = self.rows[0].report
        lines = [
            "| model | GAUC [95% CI] | gain vs DLCM [95% CI] | "
            + " | ".join(f"NDCG@{k} | clicks@{k}" for k in KS) + f" | GMV@{GMV_K} | paper GAUC | paper gain |",
            "|---|---|---|" + "---|---|" * len(KS) + "---|---|---|",
        ]
        for r in self.rows:
            rep = r.report
            lines.append(
                f"| {r.title} | {rep.gauc} | {_gain(r.gain)} | "
                + " | ".join(f"{rep.ndcg[k]:.4f} | {rep.clicks[k]:.3f}" for k in KS) + f" | {_gmv(rep.gmv)}"
                + (" | | |" if r.paper_gauc is None else f" | {r.paper_gauc:.5f} | {r.paper_gain:+.2%} |"))
        lines.append(f"| initial order | {first.gauc_initial:.5f} | | " + " | ".join(
            f"{first.ndcg_initial[k]:.4f} | {first.clicks_initial[k]:.3f}" for k in KS)
            + f" | {_gmv(first.gmv_initial)} | | |")
        lines.append("")
        lines.append(f"{first.requests:,} test requests with both labels (GAUC, Eq. 12); {first.skipped:,} with one "
                     "label class skipped. NDCG@k and clicks@k over the labelled candidates of each request; "
                     f"GMV@{GMV_K}, what its {GMV_K} best sold, in price units (the lowest price level's price).")
        heads = [f"{r.title}: " + ", ".join(f"{h} {auc:.4f}" for h, auc in r.report.head_auc.items())
                 for r in self.rows if r.report.head_auc]
        if heads:
            lines.append("Multi-task heads, AUC over the clicked candidates: " + "; ".join(heads) + ".")
        lines.extend(f"Note: {note}" for note in self.notes)
        lines.append("")
        if self.explored:
            lines += self.explored_markdown()
        lines.extend(f"- {'yes' if ok else 'NO '} {check}" for check, ok in self.checks.items())
        if self.curves is not None:
            lines += ["", *self.curves.to_markdown()]
        return "\n".join(lines) + "\n"

    def explored_markdown(self) -> list[str]:
        first = self.explored[0].report
        lines = [f"On the exploration bucket's test requests ({first.requests:,} with both labels): their order was "
                 "shuffled within windows as it was shown, so their labels carry less of the shown order's position "
                 "bias (docs/exploration.md).", "",
                 "| model | GAUC [95% CI] | gain vs DLCM [95% CI] |", "|---|---|---|"]
        lines += [f"| {r.title} | {r.report.gauc} | {_gain(r.gain)} |"
                  for r in self.explored]
        return [*lines, f"| initial order | {first.gauc_initial:.5f} | |", ""]

    def to_records(self) -> list[dict]:
        explored = {r.name: r.report.gauc for r in self.explored}
        records = []
        for r in self.rows:
            rep = r.report
            record = {"model": r.name, "title": r.title, "gauc": rep.gauc.value, "gauc_low": rep.gauc.low,
                      "gauc_high": rep.gauc.high, "gain_vs_dlcm": r.gain.value, "gain_low": r.gain.low,
                      "gain_high": r.gain.high, "requests": rep.requests, "skipped": rep.skipped}
            for k in KS:
                record |= {f"ndcg@{k}": rep.ndcg[k], f"ndcg@{k}_initial": rep.ndcg_initial[k],
                           f"clicks@{k}": rep.clicks[k], f"clicks@{k}_initial": rep.clicks_initial[k],
                           f"gmv@{k}": rep.gmv.get(k, NAN.value), f"gmv@{k}_initial": rep.gmv_initial.get(k, NAN.value)}
            record |= {f"{head}_auc": rep.head_auc.get(head, NAN.value) for head in HEADS[1:]}
            on_bucket = explored.get(r.name, NAN)
            record |= {"gauc_explored": on_bucket.value, "gauc_explored_low": on_bucket.low,
                       "gauc_explored_high": on_bucket.high}
            records.append(record | {"gauc_initial_order": rep.gauc_initial, "paper_gauc": r.paper_gauc,
                                     "paper_gain": r.paper_gain,
                                     "collapsed": bool(self.curves and self.curves.collapsed(r.name))})
        return records

    def write(self, path_of: Callable[[str], Path]) -> dict[str, Path]:
        """The table as md, csv, json and png, each at `path_of(extension)` (`DayLayout.comparison`)."""
        paths = {ext: path_of(ext) for ext in ("md", "csv", "json", "png")}
        for path in paths.values():
            path.parent.mkdir(parents=True, exist_ok=True)
        paths["md"].write_text(self.to_markdown())
        records = self.to_records()
        write_csv(paths["csv"], records)
        curves = None if self.curves is None else {"initial": self.curves.initial, "by_model": self.curves.by_model}
        paths["json"].write_text(json.dumps({"rows": records, "checks": self.checks, "validation_curves": curves,
                                             "notes": list(self.notes)},
                                            indent=2) + "\n")
        self.plot(paths["png"])
        return paths

    def plot(self, path: Path) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        titles = [textwrap.fill(r.title.replace("+", "+ ", 1), 14) for r in self.rows]
        colours = ["#8c8c8c" if r.paper_gauc is None else "#4c72b0" for r in self.rows]  # hand rules in grey
        x = np.arange(len(self.rows))
        fig, (left, right) = plt.subplots(1, 2, figsize=(15, 5.4))
        gauc = np.array([r.report.gauc.value for r in self.rows])
        errors = np.array([[g - r.report.gauc.low, r.report.gauc.high - g] for g, r in zip(gauc, self.rows,
                                                                                        strict=True)]).T
        left.bar(x, gauc, yerr=errors, capsize=4, color=colours)
        low = float(np.nanmin([r.report.gauc.low for r in self.rows]))
        left.set_ylim(max(0.0, low - 0.02), min(1.0, float(np.nanmax(gauc)) + 0.02))
        left.set_title("GAUC on the test day (95% bootstrap interval)")
        gains = np.array([r.gain.value for r in self.rows]) * 100
        gain_err = np.array([[r.gain.value - r.gain.low, r.gain.high - r.gain.value] for r in self.rows]).T * 100
        width = 0.4
        right.bar(x - width / 2, gains, width, yerr=gain_err, capsize=3, label="this run (hand rules grey)",
                  color=colours)
        right.bar(x + width / 2, [np.nan if r.paper_gain is None else r.paper_gain * 100 for r in self.rows], width,
                  label="paper (Table 2)",
                  color="#dd8452")
        right.axhline(0, color="black", linewidth=0.8)
        right.set_title("relative GAUC gain over DLCM, %")
        right.legend()
        for axis in (left, right):
            axis.set_xticks(x, titles, fontsize=7)
            axis.grid(axis="y", alpha=0.3)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)


def input_notes(spec: dict) -> tuple[str, ...]:
    """What the table's reader must know about the day's inputs, from its feature spec."""
    notes = []
    if not spec["features"]["cloud_score"]["boundaries"]:
        notes.append("the page requests carried no cloud score: DNN-rank and DLCM saw the rank only (besides the "
                     "items' own features), so a gain over DLCM is a gain over the list order")
    return tuple(notes)


def compare(reports: dict[str, RankingReport], rules: dict[str, RankingReport] | None = None,
            curves: Curves | None = None, rounds: int = 200, seed: int = 0, notes: tuple[str, ...] = (),
            explored: dict[str, RankingReport] | None = None) -> Comparison:
    """Rows in the paper's order for the models present, then the hand rules (RULES) given; gains against DLCM
    when it was trained. `explored`: the models' reports on the exploration bucket's test requests."""
    rules, explored = rules or {}, explored or {}
    names = [n for n in MODELS if n in reports]

    def row(name: str, title: str, report: RankingReport, base: RankingReport | None) -> Row:
        return Row(name, title, report, paired_gain(report.per_request, base.per_request, rounds, seed) if base
                   else NAN)

    base = reports.get(BASELINE)
    rows = [row(n, MODELS[n].title, reports[n], base) for n in names] + [
        row(n, RULES[n], rules[n], base) for n in RULES if n in rules]
    on_bucket = tuple(row(n, MODELS[n].title, explored[n], explored.get(BASELINE)) for n in names if n in explored)
    return Comparison(rows, order_checks(reports, rules, curves, rounds, seed), curves, notes, on_bucket)


def order_checks(reports: dict[str, RankingReport], rules: dict[str, RankingReport] | None = None,
                 curves: Curves | None = None, rounds: int = 200, seed: int = 0) -> dict[str, bool]:
    """The paper's order: DNN-rank < DLCM < each CRBAN variant < the full model, each gap with a paired bootstrap
    interval that excludes zero; each model at least as good as every model that sees a subset of its inputs
    (SUBSETS); the full model above every hand rule, interval above zero; DLCM not below the initial order it
    re-ranks, by more than EQUIVALENCE_MARGIN (else a gain over it measures a baseline that failed to learn the list;
    DLCM reads the cloud's features only, so matching the list order within noise is what learning it looks like);
    the full model at least +2% over DLCM; and no model collapsed onto the list order (Curves.collapsed)."""
    checks: dict[str, bool] = {}
    rules = rules or {}

    def gap(better: RankingReport, worse: RankingReport) -> Interval:
        return paired_gain(better.per_request, worse.per_request, rounds, seed)

    def above(better: str, worse: str) -> None:
        if better in reports and worse in reports:
            g = gap(reports[better], reports[worse])
            checks[f"{MODELS[better].title} > {MODELS[worse].title}, interval above 0 "
                   f"({g.value:+.2%} [{g.low:+.2%}, {g.high:+.2%}])"] = g.low > 0

    variants = [n for n in MODELS if n not in ("dnn_rank", BASELINE, FULL_MODEL)]
    above(BASELINE, "dnn_rank")
    for variant in variants:
        above(variant, BASELINE)
        above(FULL_MODEL, variant)
    for more, less in SUBSETS:
        if more in reports and less in reports:
            g = gap(reports[more], reports[less])
            checks[f"{MODELS[more].title} at least as good as {MODELS[less].title}, which sees a subset of its "
                   f"inputs ({g.value:+.2%} [{g.low:+.2%}, {g.high:+.2%}])"] = g.value >= 0
    if FULL_MODEL in reports:
        for name, rule in rules.items():
            g = gap(reports[FULL_MODEL], rule)
            checks[f"{MODELS[FULL_MODEL].title} > {RULES[name]}, interval above 0 "
                   f"({g.value:+.2%} [{g.low:+.2%}, {g.high:+.2%}])"] = g.low > 0
    if BASELINE in reports:
        base = reports[BASELINE]
        g = paired_gain(base.per_request, base.per_request_initial, rounds, seed)
        checks[f"{MODELS[BASELINE].title} not below the initial order's GAUC by more than {EQUIVALENCE_MARGIN:.1%} "
               f"({base.gauc.value:.5f} vs {base.gauc_initial:.5f}: {g.value:+.2%} [{g.low:+.2%}, "
               f"{g.high:+.2%}])"] = g.low >= -EQUIVALENCE_MARGIN
    if FULL_MODEL in reports and BASELINE in reports:
        gain = gap(reports[FULL_MODEL], reports[BASELINE])
        checks[f"{MODELS[FULL_MODEL].title} >= +2% over DLCM ({gain.value:+.2%})"] = gain.value >= 0.02
    if curves is not None:
        for name in reports:
            if name in curves.by_model:
                collapsed = curves.collapsed(name)
                found = "stayed at" if collapsed else "left"
                checks[f"{MODELS[name].title} did not collapse onto the list order (its validation GAUC {found} the "
                       f"initial order's {curves.initial:.5f} after its first epoch)"] = not collapsed
    return checks
