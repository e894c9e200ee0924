import datetime as dt
import gzip
import hashlib
import json

import numpy as np
import pytest

from edgerec.contracts import LogValidator
from edgerec.errors import ConfigError
from edgerec.sim.config import load_sim_config
from edgerec.sim.corrupt import CORRUPTION_REASONS, applicable_kinds, corrupt
from edgerec.sim.writer import SUMMARY_FILE, events_dir, items_path, simulate

pytestmark = pytest.mark.unit
EXPOSURE = {"event_id": "s-00001", "event_type": "exposure", "user_id": "u1", "session_id": "s",
            "device_id": "d", "ts": 1_793_500_000_000, "app_version": "1", "model_version": None,
            "request_id": "s-p0", "item_id": 5, "position": 0, "exposure_duration_ms": 800,
            "scroll_speed": 1.0, "scroll_duration_ms": 200, "scroll_count": 1}
RERANK = {**{k: EXPOSURE[k] for k in ("event_id", "user_id", "session_id", "ts")},
          "event_type": "rerank", "request_id": "s-p0", "trigger": "page", "order": [5, 6]}
DS = dt.datetime.fromtimestamp(EXPOSURE["ts"] / 1000, dt.UTC).date().isoformat()


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    ("event", "kind"), [(e, k) for e in (EXPOSURE, RERANK) for k in applicable_kinds(e)],
    ids=lambda x: x if isinstance(x, str) else x["event_type"])
def test_every_corruption_kind_gets_its_reason(event, kind):
    assert applicable_kinds(RERANK) == [k for k in CORRUPTION_REASONS if k != "negative_duration"]
    validator = LogValidator(known_items={5, 6})
    lines = corrupt(event, kind, np.random.default_rng(1), unknown_item_id=999)
    results = [validator.check(line, ds=DS) for line in lines]
    bad = [r for r in results if isinstance(r, tuple)]
    assert [r[0] for r in bad] == [CORRUPTION_REASONS[kind]]
    assert len(results) - len(bad) == (1 if kind == "duplicate_event_id" else 0)


def test_simulated_corruption_is_counted_exactly_and_no_good_row_is_lost(tmp_path):
    cfg = load_sim_config(users=120, days=2, seed=5, corrupt_rate=0.05)
    summary = simulate(cfg, tmp_path)
    for ds, day in summary["days"].items():
        assert set(day["corrupted_by_kind"]) == set(CORRUPTION_REASONS)  # every kind shows up
        report = LogValidator(range(1, cfg.world.n_items + 1)).validate_path(events_dir(tmp_path, ds))
        expected = {str(CORRUPTION_REASONS[k]): n for k, n in day["corrupted_by_kind"].items()}
        assert dict(report.bad_by_reason) == expected
        assert report.rows == day["lines"]
        assert report.good == day["lines"] - sum(expected.values())
        assert json.loads((events_dir(tmp_path, ds) / SUMMARY_FILE).read_text()) == day


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    runs = {}
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        simulate(load_sim_config(users=40, days=2, seed=seed, corrupt_rate=0.01), tmp_path / name)
        runs[name] = [sha(p) for p in sorted((tmp_path / name).rglob("*")) if p.suffix in (".gz", ".parquet")]
    assert len(runs["a"]) == 4
    assert runs["a"] == runs["b"]
    assert runs["a"] != runs["c"]


def test_one_day_alone_equals_that_day_of_a_longer_run(tmp_path):
    simulate(load_sim_config(users=40, days=3, seed=3), tmp_path / "long")
    simulate(load_sim_config(users=40, days=1, seed=3, start_date="2026-11-02"), tmp_path / "day")
    assert sha(events_dir(tmp_path / "long", "2026-11-02") / "part-00000.jsonl.gz") == \
        sha(events_dir(tmp_path / "day", "2026-11-02") / "part-00000.jsonl.gz")
    assert sha(items_path(tmp_path / "long", "2026-11-02")) == sha(items_path(tmp_path / "day", "2026-11-02"))


def test_events_land_in_their_day_and_follow_the_contract(tmp_path):
    summary = simulate(load_sim_config(users=60, days=2, seed=9), tmp_path)
    for ds, day in summary["days"].items():
        with gzip.open(day["events_path"]) as lines:
            report = LogValidator(range(1, 20_001)).validate_path(events_dir(tmp_path, ds))
            assert sum(1 for _ in lines) == day["events"] == report.good
        assert report.bad == 0


def test_busy_days_end_at_midnight(tmp_path):
    summary = simulate(load_sim_config(users=20, seed=4, behaviour={"sessions_per_day": 30}), tmp_path)
    report = LogValidator().validate_path(events_dir(tmp_path, "2026-11-01"))
    assert report.bad == 0 and report.good == summary["days"]["2026-11-01"]["events"]


def test_stats_leave_out_bad_lines(tmp_path):
    from edgerec.sim.stats import stats_of_path

    summary = simulate(load_sim_config(users=30, seed=4, corrupt_rate=0.05), tmp_path)
    stats = stats_of_path(events_dir(tmp_path, "2026-11-01"))
    day = summary["days"]["2026-11-01"]
    assert stats.skipped_lines == sum(day["corrupted_by_kind"].values())
    assert sum(stats.events_by_type.values()) == day["lines"] - stats.skipped_lines


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"users": 0}, "users = 0: Input should be greater than or equal to 1 (allowed: >= 1"),
        ({"corrupt_rate": 0.9}, "corrupt_rate = 0.9: Input should be less than or equal to 0.5"),
        ({"client": {"trigger_k": 0}}, "client.trigger_k = 0"),
        ({"behaviour": {"leave_base": -1}}, "behaviour.leave_base = -1"),
        ({"world": {"n_itemz": 5}}, "world.n_itemz"),
        ({"start_date": "yesterday"}, "start_date = 'yesterday'"),
    ],
)
def test_config_errors_name_the_field_and_range(overrides, named):
    with pytest.raises(ConfigError) as error:
        load_sim_config(**overrides)
    assert named in str(error.value)


def test_config_file_is_merged_under_explicit_overrides(tmp_path):
    path = tmp_path / "sim.json"
    path.write_text(json.dumps({"users": 10, "seed": 2, "client": {"trigger_k": 7}}))
    cfg = load_sim_config(path, users=20)
    assert (cfg.users, cfg.seed, cfg.client.trigger_k, cfg.client.page_size) == (20, 2, 7, 50)
