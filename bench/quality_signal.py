"""How much within-request signal the marts hold, as a yardstick for the models of the comparison table.

    python bench/quality_signal.py [--home DIR]      # the state directory of a pipeline run (default: $EDGEREC_HOME)

Three scorings of the test mart's labelled candidates, each fitted on the train mart:
- the initial (cloud) order;
- a logistic regression on the list position and the cloud score's code (what DLCM can see);
- the same plus counts of the request's own behaviours that match the candidate: same-category exposures in the
  last 30 minutes, and same-category and same-brand page views and same-category deletes in the last 15 minutes.
It prints GAUC (Eq. 12) with bootstrap intervals, the gain over the initial order, the coefficients, and the
comparison table's rows of the same day when the run wrote one. The counts are hand-made for the simulator's
effects (fatigue, sudden preference, deletes); a model that reads the same sequences should do at least as well.
Reads the marts with duckdb; nothing is timed.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import duckdb
import numpy as np
from sklearn.linear_model import LogisticRegression

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edgerec.config import load_settings  # noqa: E402
from training.evaluation import evaluate  # noqa: E402

SESSION_MS, RECENT_MS = 30 * 60_000, 15 * 60_000
BASE = ("log_position", "cloud_score")
COUNTS = ("ie_same_category", "ie_recent", "ipv_same_category", "ipv_same_brand", "deletes_same_category")


def candidates(con: duckdb.DuckDBPyConnection, table: str):
    """One row per labelled candidate: its request, position, cloud score code, label and behaviour counts."""
    def count(pairs: str, condition: str) -> str:
        return f"len(list_filter({pairs}, lambda x: {condition}))"

    ie = "list_zip(ie_category, ie_ts, ie_e6_delete_reason)"
    ipv = "list_zip(ipv_category, ipv_brand, ipv_end_ts)"
    return con.execute(f"""
        with candidates as (
            select rerank_id, trigger_ts, ie_category, ie_ts, ie_e6_delete_reason, ipv_category, ipv_brand,
                   ipv_end_ts, generate_subscripts(cand_category, 1) - 1 as position,
                   unnest(cand_category) as category, unnest(cand_brand) as brand,
                   unnest(cand_cloud_score) as cloud_score, unnest(label) as label, unnest(mask) as mask
            from {table}
        )
        select rerank_id, ln(1 + position) as log_position, cloud_score, label,
            ln(1 + {count(ie, f"x[1] = category and trigger_ts - x[2] < {SESSION_MS}")}) as ie_same_category,
            ln(1 + {count(ie, f"trigger_ts - x[2] < {SESSION_MS}")}) as ie_recent,
            least({count(ipv, f"x[1] = category and trigger_ts - x[3] < {RECENT_MS}")}, 3) as ipv_same_category,
            least({count(ipv, f"x[2] = brand and trigger_ts - x[3] < {RECENT_MS}")}, 3) as ipv_same_brand,
            least({count(ie, f"x[1] = category and x[3] > 0 and trigger_ts - x[2] < {SESSION_MS}")}, 2)
                as deletes_same_category
        from candidates where mask = 1 order by rerank_id, position
    """).df()


def per_request(frame, scores: np.ndarray):
    """(scores, labels, masks) per request, in the initial order, as training.evaluation takes them."""
    starts = np.flatnonzero(np.r_[True, frame.rerank_id.values[1:] != frame.rerank_id.values[:-1], True])
    labels = frame.label.values
    cut = [slice(a, b) for a, b in zip(starts[:-1], starts[1:], strict=True)]
    return [scores[c] for c in cut], [labels[c] for c in cut], [np.ones(c.stop - c.start) for c in cut]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, help="state directory of a pipeline run [$EDGEREC_HOME]")
    args = parser.parse_args()
    settings = load_settings({"EDGEREC_HOME": str(args.home)} if args.home else None)
    if not settings.duckdb_path.exists():
        raise SystemExit(f"no marts at {settings.duckdb_path}: run `make run` (or `edgerec dbt build`) first")
    with duckdb.connect(str(settings.duckdb_path), read_only=True) as con:
        ds = str(con.execute("select max(ds) from fct_test_requests").fetchone()[0])
        train, test = candidates(con, "fct_train_requests"), candidates(con, "fct_test_requests")
    print(f"ds={ds}: {train.rerank_id.nunique():,} train requests ({len(train):,} labelled candidates), "
          f"{test.rerank_id.nunique():,} test requests ({len(test):,})")
    initial = None
    for name, columns in (("position + cloud score", BASE), ("+ behaviour counts", BASE + COUNTS)):
        model = LogisticRegression(max_iter=1_000).fit(train[list(columns)].values, train.label.values)
        report = evaluate(*per_request(test, model.decision_function(test[list(columns)].values)))
        if initial is None:
            initial = report.gauc_initial
            print(f"{'initial order':28s} GAUC {initial:.5f}")
        print(f"{'LR: ' + name:28s} GAUC {report.gauc}  {100 * (report.gauc.value / initial - 1):+.2f}% "
              f"over the initial order")
        print("    coefficients: " + ", ".join(f"{c} {w:+.3f}" for c, w in zip(columns, model.coef_[0], strict=True)))
    table = settings.layout(ds).training / "comparison.csv"
    if table.exists():
        print(f"the comparison table of ds={ds} ({table}):")
        with table.open() as f:
            for row in csv.DictReader(f):
                print(f"    {row['title']:28s} GAUC {float(row['gauc']):.5f}")


if __name__ == "__main__":
    main()
