"""Comparing what two state directories' Spark jobs wrote."""

import json

import pyarrow.parquet as pq

DATASETS = ["events", "quarantine", "items", "sessionized_events", "sessions", "requests", "features",
            "train_features"]


def rows(settings, name: str, ds: str) -> list[str]:
    """A dataset's rows of one day as sorted JSON lines, the state directory's path written as HOME (the quarantine
    names each bad line's file): equal days, whatever their files and row order."""
    table = pq.read_table(settings.dataset(name) / f"ds={ds}")
    return sorted(json.dumps(row, sort_keys=True, default=str).replace(str(settings.home), "HOME")
                  for row in table.to_pylist())


def assert_same_day(settings, local, ds: str) -> None:
    for name in DATASETS:
        assert rows(settings, name, ds) == rows(local, name, ds), name
    spec = json.loads(settings.layout(ds).feature_spec.read_text())
    assert spec["sha256"] == json.loads(local.layout(ds).feature_spec.read_text())["sha256"]
