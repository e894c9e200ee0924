"""The multi-task head (click, cart given a click, buy given a click): its score, its loss and its training."""

import numpy as np
import pytest
import torch

from training.data import to_inputs
from training.models import build_model
from training.models.base import multitask_loss, price_units, value_score
from training.trainer import fit, seed_everything

from .worlds import SMALL, SPEC, random_batch

pytestmark = pytest.mark.unit
MULTI = SMALL.model_copy(update={"heads": "click_cart_buy", "cart_value": 0.5, "buy_value": 1.0})


def test_price_units_are_the_level_plus_one_and_unknown_codes_the_lowest():
    assert price_units(np.array([0, 1, 2, 3, 6])).tolist() == [1, 1, 1, 2, 5]
    assert price_units(torch.tensor([2, 4])).tolist() == [1, 3]


def test_the_value_score_adds_the_log_of_what_a_click_brings_to_the_click_logit():
    heads = torch.tensor([[0.0, 0.0, 0.0], [-2.0, 100.0, -100.0]])  # sigmoid 0.5, 0.5 / 1 and 0
    scores = value_score(heads, torch.tensor([3.0, 3.0]), cart_value=0.5, buy_value=1.0)
    assert scores.tolist() == pytest.approx([np.log(1 + 0.25 + 1.5), -2.0 + np.log(1.5)])


def test_the_multitask_loss_adds_cart_and_buy_cross_entropy_over_the_clicked_only():
    heads = torch.zeros(1, 3, 3)  # every head at logit 0: log 2 per sample
    label, mask = torch.tensor([[1, 0, 1]]), torch.tensor([[1, 1, 0]])  # one labelled click
    cart, buy = torch.tensor([[1, 1, 1]]), torch.tensor([[0, 0, 0]])
    assert multitask_loss(heads, label, mask, cart, buy, torch.tensor(0.0)).item() == pytest.approx(2 * np.log(2))
    no_click = torch.tensor([[0, 0, 0]])
    assert multitask_loss(heads, no_click, mask, cart, buy, torch.tensor(0.7)).item() == pytest.approx(0.7)


@pytest.mark.parametrize("name", ["crban_hubsm_ie_ipv", "crban_hubsm_ipv", "crban_huism_ie_ipv"])
def test_every_crban_model_ranks_by_the_value_score_of_its_three_heads(name):
    torch.manual_seed(0)
    model = build_model(name, SPEC, MULTI).eval()
    batch = random_batch(5, seed=1)
    with torch.no_grad():
        x = to_inputs(batch)
        heads, scores = model(x, heads=True), model(x)
    assert heads.shape == (*scores.shape, 3)
    real = torch.arange(scores.shape[1])[None, :] < torch.from_numpy(batch.candidates)[:, None]  # all scored
    expected = value_score(heads, price_units(x.candidate[..., 3]).float(), 0.5, 1.0)
    assert torch.allclose(scores[real], expected[real], atol=1e-6)


def test_the_baselines_stay_click_models():
    assert not hasattr(build_model("dlcm", SPEC, MULTI), "heads")
    assert build_model("crban_hubsm_ie_ipv", SPEC, SMALL).heads == 1


def test_a_multitask_model_learns_its_heads_and_ranks_by_value():
    """Buys follow the candidates' first feature code: after training the buy head ranks a code that buys above one
    that never does, and the scores the model ranks by are the value score of its heads."""
    name = "crban_hubsm_ie"
    batch = random_batch(300, seed=2, candidates=6, ie=3, ipv=2)
    code = batch.candidate[..., 0]
    label = batch.mask & (np.random.default_rng(0).random(code.shape) < 0.8)
    buy = label & (code % 2 == 0)
    batch = type(batch)(**{**batch.__dict__, "label": label.astype(np.int64), "buy": buy.astype(np.int64),
                           "cart": label.astype(np.int64)})
    seed_everything(0)
    model = build_model(name, SPEC, MULTI)
    cfg = MULTI.model_copy(update={"epochs": 20, "lr": 0.03, "validation_share": 0.0, "lr_schedule": "constant"})
    fit(model, lambda epoch: batch.batches(25, seed=epoch), cfg, torch.device("cpu"))
    model.eval()
    with torch.no_grad():
        x = to_inputs(batch)
        heads, scores = model(x, heads=True), model(x)
    real = torch.from_numpy(batch.mask > 0)
    buy_p = torch.sigmoid(heads[..., 2])[real].numpy()
    even = (code % 2 == 0)[batch.mask > 0]
    assert buy_p[even].mean() > buy_p[~even].mean() + 0.3
    price = price_units(x.candidate[..., 3]).float()
    expected = value_score(heads, price, 0.5, 1.0)
    assert torch.allclose(scores[real], expected[real], atol=1e-5)


def test_scoring_a_multitask_model_gives_its_ranked_scores_and_the_heads_over_the_clicked():
    from training.trainer import score

    torch.manual_seed(0)
    model = build_model("crban_hubsm_ie_ipv", SPEC, MULTI).eval()
    batch = random_batch(6, seed=3)
    scored = score(model, [batch], torch.device("cpu"))
    with torch.no_grad():
        expected = model(to_inputs(batch), scored=torch.from_numpy(batch.mask) > 0).numpy()
    for i, n in enumerate(batch.candidates.tolist()):
        assert np.allclose(scored.scores[i], expected[i, :n], atol=1e-6)
    clicked = int(((batch.mask > 0) & (batch.label > 0)).sum())
    assert set(scored.heads) == {"cart", "buy"} and len(scored.heads["buy"][0]) == clicked
