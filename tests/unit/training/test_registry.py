"""Rebuilding a registered version from its checkpoint: the current code refuses weights it would compute
differently, whether their names and shapes changed or only the model's revision did."""

import numpy as np
import pytest
import torch

from tests.unit.training.worlds import SMALL, SPEC
from training.checkpoints import IncompatibleVersion, model_from_checkpoint
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
