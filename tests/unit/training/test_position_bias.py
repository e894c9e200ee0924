"""Position-bias corrections in training: the examination curve read from `edgerec logs positions --json`, the
inverse-propensity weights, the training-only position offsets, and that none of it reaches scoring."""

import json

import numpy as np
import pytest
import torch

from edgerec.errors import ConfigError, MissingInput
from training.config import TrainConfig
from training.models import build_model
from training.position_bias import PositionCorrection, PositionOffsets, click_weights, read_propensities
from training.trainer import fit, score, seed_everything

from .worlds import SMALL, SPEC, random_batch

pytestmark = pytest.mark.unit


def curve_file(tmp_path, bands: list[tuple[str, float]]):
    path = tmp_path / "curve.json"
    path.write_text(json.dumps({"bands": [{"positions": p, "estimate": e, "low": 0, "high": 1} for p, e in bands]}))
    return path


def test_a_curve_by_band_spreads_over_positions_carrying_the_last_estimate_over_gaps(tmp_path):
    path = curve_file(tmp_path, [("0-1", 1.0), ("2-3", 0.8), ("4-5", float("nan")), ("6-7", 0.5)])
    assert read_propensities(path, 10).tolist() == [1.0, 1.0, 0.8, 0.8, 0.8, 0.8, 0.5, 0.5, 0.5, 0.5]
    assert read_propensities(path, 3).tolist() == [1.0, 1.0, 0.8]


def test_a_missing_or_malformed_curve_is_refused_naming_it(tmp_path):
    with pytest.raises(MissingInput, match=r"no examination curve at .*nothing.json .*edgerec logs positions"):
        read_propensities(tmp_path / "nothing.json", 5)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"bands": [{"positions": "zero", "estimate": 1.0}]}))
    with pytest.raises(ConfigError, match=r"bad.json is not an examination curve"):
        read_propensities(bad, 5)
    with pytest.raises(ConfigError, match="the first position has no estimate"):
        read_propensities(curve_file(tmp_path, [("0-1", float("nan")), ("2-3", 0.5)]), 4)


def test_clicks_weigh_their_inverse_examination_clipped_and_non_clicks_one():
    label = torch.tensor([[1, 1, 0, 1]])
    shown = torch.tensor([[0, 2, 2, 9]])  # 9: past the curve, its last estimate
    weights = click_weights(label, shown, torch.tensor([1.0, 0.5, 0.25]), clip=0.4)
    assert weights.tolist() == [[1.0, 2.5, 1.0, 2.5]]  # 0.25 clipped to 0.4
    assert click_weights(label, shown, torch.tensor([1.0, 0.5, 0.5]), clip=0.1).tolist() == [[1.0, 2.0, 1.0, 2.0]]


def test_ipw_without_a_curve_or_an_unknown_mode_is_refused():
    with pytest.raises(ConfigError, match="position_bias=ipw needs train_config.propensities"):
        PositionCorrection("ipw", 5)
    with pytest.raises(ConfigError, match="unknown position-bias correction 'both'"):
        PositionCorrection("both", 5)


def test_the_offsets_shift_each_logit_by_its_shown_position_and_start_at_zero():
    offsets = PositionOffsets(3)
    logits = torch.tensor([[0.5, -1.0, 2.0]])
    assert torch.equal(offsets(logits, torch.tensor([[0, 1, 7]])), logits)  # zero at the start
    with torch.no_grad():
        offsets.offset.weight[:, 0] = torch.tensor([0.0, -1.0, -2.0])
    assert offsets(logits, torch.tensor([[0, 1, 7]])).tolist() == [[0.5, -2.0, 0.0]]  # 7 shares the last's
    assert np.allclose(offsets.curve(), np.exp([0.0, -1.0, -2.0]))


def test_ipw_loss_is_the_cross_entropy_with_each_click_counted_its_weight():
    model = build_model("dnn_rank", SPEC, SMALL)
    logits = torch.tensor([[0.0, 0.0, 0.0]])
    label, mask, shown = torch.tensor([[1, 0, 1]]), torch.tensor([[1, 1, 0]]), torch.tensor([[1, 0, 1]])
    ipw = PositionCorrection("ipw", 3, np.array([1.0, 0.5, 0.5]), clip=0.1)
    # two labelled: a click at position 1 (weight 2) and a non-click (weight 1), each log 2 at logit 0
    assert ipw.loss(model, logits, label, mask, shown).item() == pytest.approx(3 * np.log(2) / 2)
    assert PositionCorrection("none", 3).loss(model, logits, label, mask, shown).item() == pytest.approx(np.log(2))


def slope(mode: str) -> tuple[float, PositionCorrection]:
    """DLCM (its list GRU knows each candidate's place) trained on labels whose click rate falls with the place the
    candidate was shown at alone (the items are alike). Most lists were shown in their order; nearly a third were
    shuffled (as re-ranks and the exploration bucket do), which tells the place shown from the place in the list.
    -> the mean score of the first place in the list minus the last's, and the correction."""
    batch = random_batch(1000, seed=5, candidates=6, ie=2, ipv=1)
    rng = np.random.default_rng(0)
    shown = np.stack([rng.permutation(6) if rng.random() < 0.3 else np.arange(6) for _ in range(len(batch))])
    label = ((rng.random(shown.shape) < 0.2 * np.exp(-0.4 * shown)) & (batch.mask > 0)).astype(np.int64)
    batch = type(batch)(**{**batch.__dict__, "label": label, "shown_position": shown})
    cfg = SMALL.model_copy(update={"epochs": 20, "lr": 0.03, "validation_share": 0.0, "position_bias": mode})
    seed_everything(0)
    model = build_model("dlcm", SPEC, cfg)
    correction = PositionCorrection.of(cfg, 6)
    fit(model, lambda epoch: batch.batches(100, seed=epoch), cfg, torch.device("cpu"), correction=correction)
    assert not any("offset" in name for name in model.state_dict())  # nothing of the correction is the model's
    scored = score(model, batch.batches(100), torch.device("cpu"))
    full = [s for s in scored.scores if len(s) == 6]
    return float(np.mean([s[0] - s[5] for s in full])), correction


def test_position_offsets_take_the_examination_the_uncorrected_model_learns_as_relevance():
    uncorrected, _ = slope("none")
    corrected, correction = slope("feature")
    learned = correction.offsets.curve()
    assert learned[5] < learned[2] < learned[0] == 1.0  # the fall, learned by the offsets
    assert uncorrected > 0.5 and abs(corrected) < uncorrected / 2


def test_train_config_names_the_position_bias_choices():
    with pytest.raises(ValueError, match="position_bias"):
        TrainConfig(position_bias="sometimes")
    assert TrainConfig().position_bias == "none" and TrainConfig().propensities is None
