import numpy as np
import pytest
import torch

from training.recall.config import RecallConfig
from training.recall.data import Catalog, Samples
from training.recall.evaluation import metric_table, ranks
from training.recall.models import RECALL_MODELS, build
from training.recall.models.base import CausalTransformer
from training.recall.trainer import fit, score
from training.trainer import seed_everything

pytestmark = pytest.mark.unit
N_ITEMS, WIDTH = 12, 5
CFG = RecallConfig(dim=16, feature_dim=4, item_id_buckets=64, layers=1, heads=2, interests=2, dropout=0.0, batch=16,
                   epochs=1, global_negatives=3)


def catalog() -> Catalog:
    ids = np.arange(100, 100 + N_ITEMS)
    return Catalog.of({"item_id": ids, "category": ids % 3, "brand": ids % 4, "gender": ids % 2,
                       "price_level": ids % 5, "age_level": ids % 2, "bc_type": ids % 2})


def cycles(n: int, seed: int = 0) -> Samples:
    """Each user walks the catalog in order: the target is the item after the latest one (a rule no popularity
    or history rule knows: the target is never in the history)."""
    rng = np.random.default_rng(seed)
    start = rng.integers(0, N_ITEMS, n)
    length = rng.integers(1, WIDTH + 1, n)
    history = np.zeros((n, WIDTH), dtype=np.int64)
    for row in range(n):
        walk = (start[row] + np.arange(length[row])) % N_ITEMS + 1
        history[row, WIDTH - length[row]:] = walk
    target = (start + length) % N_ITEMS + 1
    return Samples(history, length, length, target, np.arange(n))


@pytest.mark.parametrize("key", list(RECALL_MODELS))
def test_every_tower_gives_normalized_user_vectors_of_its_shape(key):
    seed_everything(0)
    model = build(key, catalog(), CFG, WIDTH).eval()
    users = model.encode(torch.tensor([[0, 0, 1, 2, 3], [4, 5, 6, 7, 8]]))
    shape = (2, CFG.interests, CFG.dim) if model.multi_interest else (2, CFG.dim)
    assert users.shape == shape
    assert torch.allclose(users.norm(dim=-1), torch.ones(shape[:-1]), atol=1e-5)


def test_the_causal_transformer_reads_no_later_position():
    seed_everything(0)
    encoder = CausalTransformer(CFG).eval()
    x = torch.randn(1, WIDTH, CFG.dim)
    changed = x.clone()
    changed[0, 3:] = torch.randn(2, CFG.dim)
    valid = torch.ones(1, WIDTH, dtype=torch.bool)
    before, after = encoder(x, valid), encoder(changed, valid)
    assert torch.allclose(before[0, :3], after[0, :3], atol=1e-6)
    assert not torch.allclose(before[0, 3:], after[0, 3:])


@pytest.mark.parametrize("key", ["pwprec_ls", "sasrec", "gru4rec"])
def test_order_matters_to_the_sequential_towers(key):
    seed_everything(0)
    model = build(key, catalog(), CFG, WIDTH).eval()
    users = model.encode(torch.tensor([[0, 0, 1, 2, 3], [0, 0, 3, 2, 1]]))
    assert not torch.allclose(users[0], users[1])


# GRU4Rec-Enhanced reads its zero inputs before the history (its state moves through them); the others mask them
@pytest.mark.parametrize("key", [k for k in RECALL_MODELS if k != "gru4rec"])
def test_what_lies_at_the_padding_changes_no_user_and_an_empty_history_still_gives_one(key):
    seed_everything(0)
    model = build(key, catalog(), CFG, WIDTH).eval()
    history = torch.randn(1, WIDTH, CFG.dim)
    other = history.clone()
    other[0, :3] = torch.randn(3, CFG.dim)
    valid = torch.tensor([[False, False, False, True, True]])
    with torch.no_grad():
        assert torch.allclose(model.user(history, valid), model.user(other, valid), atol=1e-6)
        empty = model.encode(torch.zeros(2, WIDTH, dtype=torch.long))
    assert torch.isfinite(empty).all()


def test_the_loss_leaves_out_negatives_that_are_the_positive():
    model = build("pwprec_ls", catalog(), CFG.model_copy(update={"inverse_temperature": 1.0}), WIDTH).eval()
    users = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    vectors = {3: torch.tensor([1.0, 0.0]), 4: torch.tensor([0.0, 1.0]), 5: torch.tensor([0.6, 0.8])}
    model.encode = lambda history: users[: len(history)]
    model.item_vectors = lambda index: torch.stack([vectors[int(i)] for i in index.flatten()]).reshape(
        *index.shape, 2)
    # batch negatives: clicks 0 and 2 share their target (3), so neither is the other's negative
    loss = model.loss(torch.zeros(3, WIDTH, dtype=torch.long), torch.tensor([3, 4, 3]), None)
    logits = users @ torch.stack([vectors[3], vectors[4], vectors[3]]).T
    expected = [torch.log(torch.exp(logits[0, [0, 1]]).sum()) - logits[0, 0],
                torch.log(torch.exp(logits[1]).sum()) - logits[1, 1],
                torch.log(torch.exp(logits[2, [1, 2]]).sum()) - logits[2, 2]]
    assert float(loss) == pytest.approx(float(torch.stack(expected).mean()), abs=1e-6)
    # global negatives: a drawn negative equal to the target is left out
    loss = model.loss(torch.zeros(2, WIDTH, dtype=torch.long), torch.tensor([3, 4]), torch.tensor([[3, 5], [5, 5]]))
    first = torch.log(torch.exp(torch.tensor([1.0, 0.6])).sum()) - 1.0
    second = torch.log(torch.exp(torch.tensor([1.0, 0.8, 0.8])).sum()) - 1.0
    assert float(loss) == pytest.approx(float((first + second) / 2), abs=1e-6)


def test_a_multi_interest_tower_scores_with_the_interest_nearest_the_candidates():
    model = build("pwprec_mi", catalog(), CFG, WIDTH)
    users = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    assert model.pick_interest(users, torch.tensor([[[0.1, 0.9], [0.0, 1.0]]])).tolist() == [[0.0, 1.0]]
    assert model.pick_interest(users, torch.tensor([[[1.0, 0.2]]])).tolist() == [[1.0, 0.0]]


# ComiRec-SA pools its interests over the history without recency: which item is the latest it can tell only from
# absolute positions counted from the first, so it learns the walk's next item less well
@pytest.mark.parametrize(("key", "task", "learned"), [("pwprec_ls", "user", 0.8), ("pwprec_mi", "session", 0.8),
                                                      ("gru4rec", "user", 0.8), ("sasrec", "session", 0.8),
                                                      ("comirec_sa", "user", 0.3)])
def test_each_model_learns_the_next_item_that_no_rule_knows(key, task, learned):
    seed_everything(0)
    model = build(key, catalog(), CFG, WIDTH)
    train, test = cycles(400, seed=0), cycles(100, seed=1)
    candidates = np.tile(np.arange(1, N_ITEMS + 1), (len(test), 1))
    candidates[np.arange(len(test)), test.target - 1] = candidates[:, 0]
    candidates[:, 0] = test.target  # the positive first, then every other item
    untrained = metric_table(ranks(score(model, test.history, candidates)))["recall_at_1"].mean()
    fit(model, train, CFG.model_copy(update={"epochs": 30, "lr": 0.01}), task, N_ITEMS)
    trained = metric_table(ranks(score(model, test.history, candidates)))["recall_at_1"].mean()
    assert untrained < 0.2 and trained > learned


def test_training_is_deterministic_for_a_seed():
    def weights():
        seed_everything(3)
        model = build("pwprec_ls", catalog(), CFG, WIDTH)
        fit(model, cycles(64), CFG.model_copy(update={"epochs": 2}), "session", N_ITEMS)
        return model.state_dict()

    first, second = weights(), weights()
    assert all(torch.equal(first[k], second[k]) for k in first)
