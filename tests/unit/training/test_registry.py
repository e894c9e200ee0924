"""Rebuilding a registered version from its checkpoint: the current code refuses weights it would compute
differently, whether their names and shapes changed or only the model's revision did. Starting a model from a
parent's weights (warm start) under a later day's feature spec."""

import numpy as np
import pytest
import torch

from tests.unit.training.worlds import SMALL, SPEC
from training.checkpoints import IncompatibleVersion, model_from_checkpoint, warm_start
from training.models import build_model

pytestmark = pytest.mark.unit


def checkpoint_of(name: str) -> dict:
    model = build_model(name, SPEC, SMALL)
    return {"model": name, "revision": model.revision, "config": SMALL.model_dump(), "spec": SPEC,
            "state_dict": model.state_dict()}


def test_a_checkpoint_of_the_current_revision_loads_its_weights_and_its_learned_rows():
    model = build_model("crban_hubsm_ie_ipv", SPEC, SMALL)
    counts = {name: np.full(t.num_embeddings, 100) for name, t in model.items.tables.items()}
    counts["brand"][3] = 0  # never read: not learned, and the rebuilt model must know it
    model.items.restrict(counts)
    checkpoint = {"model": model.name, "revision": model.revision, "config": SMALL.model_dump(), "spec": SPEC,
                  "state_dict": model.state_dict()}
    loaded = model_from_checkpoint(checkpoint, "version 1")
    assert loaded.revision == 4
    assert all(torch.equal(v, checkpoint["state_dict"][k]) for k, v in loaded.state_dict().items())
    assert loaded.items.rows("brand", torch.tensor([2, 3])).tolist() == [2, 1]


def test_a_checkpoint_of_an_earlier_revision_is_refused_though_its_weights_fit():
    """Revision 1 of the full model pooled under a plain softmax, revision 2 without the pooled match indicators,
    revision 3 without the item match."""
    checkpoint = checkpoint_of("crban_hubsm_ie_ipv")
    del checkpoint["revision"]  # written before revisions were recorded
    with pytest.raises(IncompatibleVersion, match=r"version 3 was trained by revision 1 of crban_hubsm_ie_ipv; "
                                                  r"the current code is revision 4"):
        model_from_checkpoint(checkpoint, "version 3")
    checkpoint["revision"] = 2
    with pytest.raises(IncompatibleVersion, match=r"revision 2 of crban_hubsm_ie_ipv; the current code is revision 4"):
        model_from_checkpoint(checkpoint, "version 3")
    dlcm = checkpoint_of("dlcm")
    del dlcm["revision"]
    assert model_from_checkpoint(dlcm, "version 4").revision == 1  # unchanged models still load


def test_a_checkpoint_with_other_weights_is_refused():
    checkpoint = checkpoint_of("crban_hubsm_ie_ipv")
    checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if not k.startswith("score.")}
    with pytest.raises(IncompatibleVersion, match=r"version 5 was trained by other model code: Missing key"):
        model_from_checkpoint(checkpoint, "version 5")


def grown(spec: dict, **sizes: int) -> dict:
    """`spec` with some features' code counts changed, as a later day's spec may have them."""
    return {**spec, "features": {name: {**f, "vocab_size": sizes.get(name, f["vocab_size"])}
                                 for name, f in spec["features"].items()}}


def test_warm_start_copies_every_tensor_and_the_rows_both_item_tables_have():
    parent = checkpoint_of("crban_hubsm_ie_ipv")
    today = grown(SPEC, brand=9)  # two brands more since the parent's day: rows 7 and 8 are new
    torch.manual_seed(1)
    model = build_model("crban_hubsm_ie_ipv", today, SMALL)
    fresh = model.items.tables["brand"].weight.detach().clone()
    warm_start(model, parent, today, "the champion")
    state = model.state_dict()
    brand = state["items.tables.brand.weight"]
    assert torch.equal(brand[:7], parent["state_dict"]["items.tables.brand.weight"])
    assert torch.equal(brand[7:], fresh[7:])
    assert all(torch.equal(v, parent["state_dict"][k]) for k, v in state.items()
               if k != "items.tables.brand.weight" and not k.startswith("items.learned_"))


@pytest.mark.parametrize(("change", "message"), [
    (lambda c: c.update(model="dlcm"), r"the champion holds revision 4 of dlcm, not revision 4 of crban_hubsm_ie_ipv"),
    (lambda c: c.update(revision=3), r"the champion holds revision 3 of crban_hubsm_ie_ipv, not revision 4"),
    (lambda c: c.update(spec=grown(SPEC, ctr_score=9)), r"the champion's feature spec has other code counts for "
                                                        r"ctr_score"),
    (lambda c: c["state_dict"].pop("score.0.weight"), r"the champion has no tensor score.0.weight"),
    (lambda c: c["state_dict"].update({"score.0.weight": torch.zeros(3, 3)}),
     r"the champion's score.0.weight is \(3, 3\), today's model needs"),
])
def test_warm_start_refuses_weights_that_mean_something_else_and_leaves_the_model_as_built(change, message):
    """A code table of another size shifts every later feature's rows in the fused table; other shapes are
    another network. Nothing is copied before the whole checkpoint is checked."""
    parent = checkpoint_of("crban_hubsm_ie_ipv")
    parent["state_dict"] = {k: v + 1.0 if v.is_floating_point() else v for k, v in parent["state_dict"].items()}
    change(parent)
    model = build_model("crban_hubsm_ie_ipv", SPEC, SMALL)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(IncompatibleVersion, match=message):
        warm_start(model, parent, SPEC, "the champion")
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
