"""Training on the tiny world's marts: the comparison table, MLflow runs and the registered version, and the
evaluation gate blessing, moving the champion alias and refusing below the floor."""


import pytest

from edgerec import registry
from edgerec.config import read_json
from edgerec.errors import ConfigError, NoTrainingData
from edgerec.features import load_spec
from edgerec.reports import EvaluationGate
from tests.integration.conftest import DAYS
from training.pipeline import gate_day, train_day

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def trained(marts):
    settings = marts[0].replace(train={"epochs": 1, "models": "dlcm", "warm_start": False})
    return settings, train_day(settings, DAYS[1])


def test_training_writes_the_comparison_and_registers_the_full_model(trained):
    settings, summary = trained
    day = settings.layout(DAYS[1])
    table = day.comparison("md").read_text()
    assert "| DLCM |" in table and "| CRBAN+HUBSM(IE&IPV) |" in table and "| initial order |" in table
    assert day.comparison("png").read_bytes()[:4] == b"\x89PNG"
    rows = read_json(day.comparison("json"))["rows"]
    assert [r["model"] for r in rows] == ["dlcm", "crban_hubsm_ie_ipv", "viewed_first", "recent_first",
                                          "popular_first"]  # the models, then the hand rules on the same test mart
    assert rows[0]["gain_vs_dlcm"] == 0.0 and all(0.0 < r["gauc"] < 1.0 for r in rows[1:])
    assert "| rule: viewed before first |" in table
    assert summary["gauc"] == rows[1]["gauc"]

    client = registry.connect(settings)
    version = registry.get_version(client, summary["version"])
    spec = load_spec(settings.layout(DAYS[1]).feature_spec)
    assert version.tags["ds"] == DAYS[1] and version.tags["data_window"] == f"{DAYS[0]}..{DAYS[0]}"
    assert version.tags["feature_spec_sha"] == spec["sha256"] and version.tags["model"] == "crban_hubsm_ie_ipv"
    assert float(version.tags["gauc"]) == pytest.approx(summary["gauc"], abs=1e-6)
    assert len(version.tags["git_sha"]) in (40, len("unknown"))
    assert version.id == summary["version_id"] and version.id.startswith("v20261102-")
    child = client.get_run(version.run_id)  # rows learned per item table, beside padding and OOV (ItemTables)
    assert 2 < int(child.data.params["learned_rows.brand"]) <= spec["features"]["brand"]["vocab_size"]
    parent = client.get_run(summary["run_id"])
    assert parent.data.params["feature_spec_sha"] == spec["sha256"]
    artifacts = {a.path for a in client.list_artifacts(summary["run_id"], "comparison")}
    assert {f"comparison/{day.comparison(e).name}" for e in ("md", "csv", "png")} <= artifacts
    history = client.get_metric_history(version.run_id, "train_loss")
    assert [m.step for m in history] == [1]


def test_gate_blesses_on_the_floor_then_refuses_below_it_and_keeps_the_champion(trained):
    settings, summary = trained
    first = gate_day(settings.replace(gate={"min_gauc": 0.0}), DAYS[1])
    assert first.blessed and "no champion to compare with" in first.reason
    assert first.gauc == pytest.approx(summary["gauc"], abs=1e-9)  # the registered checkpoint scores the same
    client = registry.connect(settings)
    assert registry.champion(client).number == summary["version"]
    assert registry.get_version(client, summary["version"]).tags[registry.BLESSED] == "true"

    second = train_day(settings, DAYS[1])  # same seed, same data: the same weights
    verdict = gate_day(settings.replace(gate={"min_gauc": 0.0}), DAYS[1])
    assert verdict.version == second["version"] and verdict.champion == summary["version_id"]
    assert verdict.blessed and verdict.champion_gauc == pytest.approx(verdict.gauc)

    refused = gate_day(settings.replace(gate={"min_gauc": 0.999}), DAYS[1], version=summary["version"])
    assert not refused.blessed and "below the floor 0.99900" in refused.reason
    assert registry.get_version(client, summary["version"]).tags[registry.BLESSED] == "false"
    assert registry.champion(client).number == second["version"]  # a refusal moves nothing
    report = EvaluationGate.read(settings.layout(DAYS[1]))
    assert report.blessed is False and report.version == summary["version"]


def test_the_evaluate_command_prints_the_verdict_and_exits_1_when_refused(trained):
    import json

    from typer.testing import CliRunner

    from pipeline.cli import app

    settings, summary = trained
    env = {"EDGEREC_HOME": str(settings.home), "EDGEREC_SIM_USERS": "30", "EDGEREC_GATE_MIN_GAUC": "0.999"}
    result = CliRunner().invoke(app, ["evaluate", "--ds", DAYS[1], "--version", str(summary["version"])], env=env)
    assert result.exit_code == 1, result.output
    printed, error = result.output.split("\nerror: ")
    verdict = json.loads(printed)
    assert verdict["version"] == str(summary["version"]) and verdict["blessed"] is False
    assert error.startswith(f"version {summary['version']} ({summary['version_id']}) refused: GAUC")


def test_with_warm_start_each_model_starts_from_its_weights_in_the_champions_daily_run(trained):
    settings, first = trained
    assert first["warm_start_from"] is None  # warm start off: random weights
    champion = gate_day(settings.replace(gate={"min_gauc": 0.0}), DAYS[1])
    assert champion.blessed
    summary = train_day(settings.replace(train={"warm_start": True}), DAYS[1])
    assert summary["warm_start_from"] == champion.version_id
    client = registry.connect(settings)
    version = registry.get_version(client, summary["version"])
    assert version.tags["warm_start_from"] == champion.version_id
    children = client.search_runs([client.get_run(summary["run_id"]).info.experiment_id],
                                  f"tags.mlflow.parentRunId = '{summary['run_id']}'")
    assert {r.data.params["model"]: r.data.params["warm_start_from"] for r in children} == {
        "dlcm": champion.version_id, "crban_hubsm_ie_ipv": champion.version_id}


def test_training_or_gating_on_marts_of_another_day_is_refused(trained):
    settings, _ = trained
    for stage in (train_day, gate_day):
        with pytest.raises(NoTrainingData, match=f"built for ds={DAYS[1]}, not {DAYS[0]}: run `edgerec dbt build"):
            stage(settings, DAYS[0])
    assert registry.version_of_day(registry.connect(settings), DAYS[0]) is None


def test_the_weights_do_not_depend_on_how_many_workers_train_them(trained):
    """One worker or two, each model trains in a one-thread process: the same weights, epochs and test GAUC, in
    the order asked for, with the phases' seconds reported."""
    import torch

    from training.config import TrainConfig
    from training.runner import train_models

    settings, _ = trained
    spec = load_spec(settings.layout(DAYS[1]).feature_spec)
    cfg, names = TrainConfig(epochs=2, device="cpu"), ["dlcm", "crban_hubsm_ie"]
    one, two = ([*train_models(settings.duckdb_path, spec, cfg, names, torch.device("cpu"), workers=n)]
                for n in (1, 2))
    assert [t.name for t in one] == [t.name for t in two] == names
    for a, b in zip(one, two, strict=True):
        assert a.state.keys() == b.state.keys() and all(torch.equal(a.state[k], b.state[k]) for k in a.state)
        assert [r.loss for r in a.history] == [r.loss for r in b.history]
        assert a.report.gauc.value == b.report.gauc.value
        assert set(a.seconds) == {"load", "fit", "validation", "test"} and a.samples_per_s > 0


def test_a_version_of_another_day_is_not_judged_on_this_days_test_requests(trained):
    settings, summary = trained
    client = registry.connect(settings)
    client.set_model_version_tag(registry.REGISTERED_MODEL, summary["version"], "ds", DAYS[0])
    try:
        with pytest.raises(ConfigError, match=f"was trained for ds={DAYS[0]}, not ds={DAYS[1]}: its gates judge it "
                                              f"on that day's test requests \\(pass --ds {DAYS[0]}"):
            gate_day(settings, DAYS[1], version=summary["version"])
    finally:
        client.set_model_version_tag(registry.REGISTERED_MODEL, summary["version"], "ds", DAYS[1])
