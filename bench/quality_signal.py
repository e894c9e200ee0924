"""How much within-request signal the marts hold, as a yardstick for the models of the comparison table.

    python bench/quality_signal.py [--home DIR]      # the state directory of a pipeline run (default: $EDGEREC_HOME)

Three scorings of the test mart's labelled candidates, each fitted on the train mart:
- the initial (cloud) order;
- a logistic regression on the list position and the cloud score's code (what DLCM can see);
- the same plus counts of the request's own behaviours: exposures in the last 30 minutes (all of them, those of
  the candidate's category, and those of its category deleted), and page views in the last 15 minutes of the
  candidate's category and of its brand.
It prints GAUC (Eq. 12) with bootstrap intervals, the gain over the initial order, the coefficients, and the
comparison table's rows of the same day when the run wrote one. The counts are hand-made for the simulator's
effects (fatigue, sudden preference, deletes); a model that reads the same sequences should do at least as well.
Reads the marts with duckdb; nothing is timed.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import duckdb
import numpy as np
from sklearn.linear_model import LogisticRegression

from edgerec.config import load_settings
from training.evaluation import evaluate

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
    ids = frame.rerank_id.values
    starts = np.flatnonzero(ids[1:] != ids[:-1]) + 1  # the frame is ordered by request
    labels = np.split(frame.label.values, starts)
    return np.split(scores, starts), labels, [np.ones(len(y)) for y in labels]


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
    for name, frame in (("fct_train_requests", train), ("fct_test_requests", test)):
        if frame.label.nunique() < 2:
            raise SystemExit(f"{name} in {settings.duckdb_path} has no clicked and unclicked labelled candidates to "
                             "fit or score (the first day of a run has no train days)")
    print(f"ds={ds}: {train.rerank_id.nunique():,} train requests ({len(train):,} labelled candidates), "
          f"{test.rerank_id.nunique():,} test requests ({len(test):,})")
    for i, (name, columns) in enumerate((("position + cloud score", BASE), ("+ behaviour counts", BASE + COUNTS))):
        model = LogisticRegression(max_iter=1_000).fit(train[list(columns)].values, train.label.values)
        report = evaluate(*per_request(test, model.decision_function(test[list(columns)].values)))
        if i == 0:
            print(f"{'initial order':28s} GAUC {report.gauc_initial:.5f}")
        print(f"{'LR: ' + name:28s} GAUC {report.gauc}  {100 * (report.gauc.value / report.gauc_initial - 1):+.2f}% "
              f"over the initial order")
        print("    coefficients: " + ", ".join(f"{c} {w:+.3f}" for c, w in zip(columns, model.coef_[0], strict=True)))
    table = settings.layout(ds).comparison("csv")
    if table.exists():
        print(f"the comparison table of ds={ds} ({table}):")
        with table.open() as f:
            for row in csv.DictReader(f):
                print(f"    {row['title']:28s} GAUC {float(row['gauc']):.5f}")


if __name__ == "__main__":
    main()
