import shutil

import numpy as np
import pytest
import torch

from edgerec.registry import ModelVersion
from tests.unit.training.recall.test_models import CFG, WIDTH, catalog
from training.checkpoints import IncompatibleVersion
from training.recall.models import build
from training.recall.pipeline import CHECKPOINT, load_version
from training.trainer import seed_everything

pytestmark = pytest.mark.unit


class RunArtifacts:
    """Stands for the registry client's one call the loader makes: a run's artifact, copied into a directory."""

    def __init__(self, path):
        self.path = path

    def download_artifacts(self, run_id, artifact, directory):
        assert artifact == CHECKPOINT
        return shutil.copy(self.path, directory)


def saved(tmp_path, tower, **changes):
    c = catalog()
    checkpoint = {"model": tower.key, "config": tower.cfg.model_dump(), "width": tower.width,
                  "catalog": {"item_ids": torch.from_numpy(c.item_ids), "codes": torch.from_numpy(c.codes),
                              "vocabularies": c.vocabularies}, "state_dict": tower.state_dict(), **changes}
    torch.save(checkpoint, tmp_path / "recall.pt")
    return RunArtifacts(tmp_path / "recall.pt")


VERSION = ModelVersion("1", "run", {"edgerec.version": "v20261102-00000000"})


def test_a_version_rebuilt_on_a_newer_catalog_gives_new_items_their_own_rows(tmp_path):
    seed_everything(0)
    model = build("pwprec_ls", catalog(), CFG, WIDTH).eval()
    client = saved(tmp_path, model)
    same, own = load_version(client, VERSION)
    assert own.item_ids.tolist() == catalog().item_ids.tolist()
    history = torch.tensor([[0, 0, 1, 2, 3]])
    assert torch.allclose(same.encode(history), model.encode(history))
    ids = np.arange(100, 114)  # two items more, with a category value the version never saw
    items = {"item_id": ids, "category": np.where(ids < 112, ids % 3, 99), "brand": ids % 4, "gender": ids % 2,
             "price_level": ids % 5, "age_level": ids % 2, "bc_type": ids % 2}
    newer, today = load_version(client, VERSION, items)
    assert today.index(np.array([113])).tolist() == [14] and today.codes[14, 0] == 0  # unknown category: code 0
    assert torch.allclose(newer.encode(history), model.encode(history))  # the old items keep their vectors
    with torch.no_grad():
        assert not torch.allclose(newer.item_vectors(torch.tensor([13])), newer.item_vectors(torch.tensor([14])))


def test_a_version_this_code_cannot_rebuild_is_named_as_such(tmp_path):
    model = build("pwprec_ls", catalog(), CFG, WIDTH)
    with pytest.raises(IncompatibleVersion, match=r"cannot be rebuilt by this code: 'PWPRec\(LS\)'"):
        load_version(saved(tmp_path, model, model="PWPRec(LS)"), VERSION)
    with pytest.raises(IncompatibleVersion, match="cannot be rebuilt by this code"):
        load_version(saved(tmp_path, model, state_dict={}), VERSION)
