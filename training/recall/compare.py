"""The recall comparison beside the paper's Tables 3 and 4: Recall@1/5/10/20, NDCG@10 and Recall@100 of each model
and reference rule on each task's test clicks, with bootstrap intervals over users; the paper's pairwise claims as
checks (a paired interval above zero); written as markdown, CSV and a PNG."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from training.compare import write_csv
from training.evaluation import Interval
from training.recall.evaluation import NDCG_K, RecallReport, UserBootstrap

COLUMNS = ("recall_at_1", "recall_at_5", "recall_at_10", "recall_at_20", f"ndcg_at_{NDCG_K}", "recall_at_100")
HEADERS = ("Recall@1", "Recall@5", "Recall@10", "Recall@20", f"NDCG@{NDCG_K}", "Recall@100")
# (better, worse, metric, the paper's relative gain where it states one): the paper's claims, and the rules
CLAIMS = (
    ("PWPRec(LS)", "GRU4Rec-Enhanced", "recall_at_1", 0.13), ("PWPRec(LS)", "GRU4Rec-Enhanced", "recall_at_10", None),
    ("PWPRec(LS)", "SASRec", "recall_at_1", None), ("PWPRec(LS)", "SASRec", "recall_at_10", None),
    ("PWPRec(MI)", "ComiRec-SA", "recall_at_1", 0.22), ("PWPRec(MI)", "ComiRec-SA", "recall_at_10", None),
    ("PWPRec(LS)", "rule: most popular", "recall_at_20", None),
    ("PWPRec(LS)", "rule: interacted before, latest first", "recall_at_20", None),
)


@dataclass
class TaskTable:
    task: str
    clicks: int
    bootstrap: UserBootstrap
    reports: dict[str, RecallReport] = field(default_factory=dict)

    def interval(self, name: str, metric: str) -> Interval:
        return self.bootstrap.interval(self.reports[name].per_click[metric])

    def gain(self, better: str, worse: str, metric: str) -> Interval:
        return self.bootstrap.interval(self.reports[better].per_click[metric], self.reports[worse].per_click[metric])


CLOUD_RANKER = "simulator's cloud ranker"
# the whole catalog's candidate generation (user task): the registered model above the simulated cloud ranker
CATALOG_CLAIMS = (("PWPRec(LS)", CLOUD_RANKER), ("PWPRec(LS)", "rule: most popular"))


@dataclass
class RecallComparison:
    tables: dict[str, TaskTable]
    catalog: dict[str, np.ndarray] = field(default_factory=dict)  # per user-task test click: target in the 100?

    @property
    def checks(self) -> dict[str, bool]:
        """Each claim on each task: the paired gain's interval above zero (a claim whose rows are missing is left
        out)."""
        out = {}
        for task, table in self.tables.items():
            for better, worse, metric, _ in CLAIMS:
                if better in table.reports and worse in table.reports:
                    out[f"{task}: {better} > {worse} on {metric}"] = table.gain(better, worse, metric).low > 0
        for better, worse in CATALOG_CLAIMS:
            if better in self.catalog and worse in self.catalog:
                out[f"user: {better} > {worse} on catalog recall_at_100"] = self.catalog_gain(better, worse).low > 0
        return out

    def catalog_gain(self, better: str, worse: str) -> Interval:
        return self.tables["user"].bootstrap.interval(self.catalog[better], self.catalog[worse])

    def to_records(self) -> list[dict]:
        records = []
        for task, table in self.tables.items():
            for name in table.reports:
                record = {"task": task, "row": name, "clicks": table.clicks}
                for metric in COLUMNS:
                    value = table.interval(name, metric)
                    record |= {metric: value.value, f"{metric}_low": value.low, f"{metric}_high": value.high}
                records.append(record)
        for name, hits in self.catalog.items():
            value = self.tables["user"].bootstrap.interval(hits)
            records.append({"task": "user (whole catalog)", "row": name, "clicks": len(hits), "recall_at_100":
                            value.value, "recall_at_100_low": value.low, "recall_at_100_high": value.high})
        return records

    def to_markdown(self) -> str:
        lines = []
        for task, table in self.tables.items():
            kind = "user-based (the homepage's: the user's interactions over days)" if task == "user" else \
                "session-based (the item page's: this session's interactions)"
            lines += [f"### {kind}: {table.clicks:,} test clicks", "",
                      "| row | " + " | ".join(HEADERS) + " |", "|---" * (len(HEADERS) + 1) + "|"]
            for name in table.reports:
                cells = [_cell(table.interval(name, metric)) for metric in COLUMNS]
                lines.append(f"| {name} | " + " | ".join(cells) + " |")
            lines.append("")
            for better, worse, metric, paper in CLAIMS:
                if better in table.reports and worse in table.reports:
                    gain = table.gain(better, worse, metric)
                    verdict = "passes" if gain.low > 0 else "fails"
                    said = f"; the paper: {paper:+.0%}" if paper is not None else ""
                    lines.append(f"- {better} over {worse}, {metric}: {_gain(gain)} ({verdict}{said})")
            lines.append("")
        if self.catalog:
            bootstrap = self.tables["user"].bootstrap
            lines += ["### Candidate generation over the whole catalog (user-based task)", "",
                      "Recall@100: the share of test clicks whose item is among the 100 candidates a source gives at "
                      "the click's time, all items eligible (the models: the nearest 100; the cloud ranker: its "
                      "answer to a fresh page request).", "", "| source | Recall@100 |", "|---|---|"]
            lines += [f"| {name} | {_cell(bootstrap.interval(hits))} |" for name, hits in self.catalog.items()]
            lines.append("")
            lines += [f"- {better} over {worse}: {_gain(self.catalog_gain(better, worse))} "
                      f"({'passes' if self.catalog_gain(better, worse).low > 0 else 'fails'})"
                      for better, worse in CATALOG_CLAIMS if better in self.catalog and worse in self.catalog]
            lines.append("")
        return "\n".join(lines)

    def write(self, directory: Path) -> dict[str, Path]:
        directory.mkdir(parents=True, exist_ok=True)
        paths = {ext: directory / f"comparison.{ext}" for ext in ("md", "csv", "png")}
        paths["md"].write_text(self.to_markdown())
        write_csv(paths["csv"], self.to_records())
        self.plot(paths["png"])
        return paths

    def plot(self, path: Path) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        shown = ("recall_at_1", "recall_at_10", "recall_at_20")
        fig, axes = plt.subplots(1, len(self.tables), figsize=(7.5 * len(self.tables), 5), squeeze=False)
        for axis, (task, table) in zip(axes[0], self.tables.items(), strict=True):
            x = np.arange(len(table.reports))
            width = 0.8 / len(shown)
            for j, metric in enumerate(shown):
                values = [table.interval(n, metric) for n in table.reports]
                errors = np.array([[v.value - v.low, v.high - v.value] for v in values]).T
                axis.bar(x + (j - 1) * width, [v.value for v in values], width, yerr=errors, capsize=3,
                         label=metric.replace("recall_at_", "Recall@"))
            axis.set_xticks(x, [n.replace(": ", ":\n") for n in table.reports], fontsize=7)
            axis.set_title(f"{task}-based task, {table.clicks:,} test clicks (95% bootstrap over users)")
            axis.grid(axis="y", alpha=0.3)
            axis.legend()
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)


def _cell(value: Interval) -> str:
    return f"{value.value:.4f} [{value.low:.4f}, {value.high:.4f}]"


def _gain(value: Interval) -> str:
    return f"{value.value:+.1%} [{value.low:+.1%}, {value.high:+.1%}]"
