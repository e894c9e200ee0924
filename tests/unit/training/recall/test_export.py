import json

import numpy as np
import onnxruntime as ort
import pytest
import torch
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edgerec.contracts.bundle import BundleError
from edgerec.contracts.recall_bundle import (
    INDEX,
    ITEM_EMBEDDINGS,
    ITEM_IDS,
    POPULAR,
    USER_TOWER,
    verify_recall_bundle,
)
from edgerec.contracts.signing import SIGNATURE, key_id, sign
from edgerec.recall import RecallRuntime
from tests.unit.training.recall.test_models import CFG, WIDTH, catalog
from training.recall.export import build_index, export_recall
from training.recall.models import build
from training.trainer import seed_everything

pytestmark = pytest.mark.unit


@pytest.fixture
def exported(tmp_path):
    seed_everything(0)
    model = build("pwprec_ls", catalog(), CFG, WIDTH).eval()
    key = Ed25519PrivateKey.generate()
    root = tmp_path / "v1"
    manifest = export_recall(model, catalog(), root, version_id="v1", signer=key)
    return model, root, manifest, {key_id(key.public_key()): key.public_key()}, key


def test_the_bundle_verifies_and_its_user_tower_is_the_models(exported):
    model, root, manifest, trusted, _ = exported
    assert verify_recall_bundle(root, trusted=trusted) == manifest
    assert (manifest["items"], manifest["dim"], manifest["history"]) == (12, CFG.dim, WIDTH)
    ids = np.load(root / ITEM_IDS)
    assert ids.tolist() == list(range(100, 112))
    histories = torch.tensor([[0, 0, 1, 2, 3], [4, 5, 6, 7, 8], [0, 0, 0, 0, 9]])
    rows = np.load(root / ITEM_EMBEDDINGS)
    history = np.concatenate([np.zeros((1, CFG.dim), np.float32), rows])[histories.numpy()]
    session = ort.InferenceSession(str(root / USER_TOWER), providers=["CPUExecutionProvider"])
    users = session.run(["user"], {"history": history, "valid": (histories > 0).numpy()})[0]
    with torch.no_grad():
        expected = model.encode(histories).numpy()
    assert np.abs(users - expected).max() < 1e-5


def test_the_index_finds_the_exact_nearest_items_of_a_small_catalog():
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(500, 16)).astype(np.float32)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    queries = unit[:20]
    _, found = build_index(vectors).search(queries, 10)
    exact = np.argsort(-(queries @ unit.T), axis=1)[:, :10]
    assert (found[:, 0] == np.arange(20)).all()  # each item is its own nearest
    assert np.mean([len(set(f) & set(e)) / 10 for f, e in zip(found, exact, strict=True)]) >= 0.99


def test_an_altered_file_an_unsigned_manifest_and_a_lying_one_are_refused(exported):
    _, root, manifest, trusted, key = exported
    index = root / INDEX
    original = index.read_bytes()
    index.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    with pytest.raises(BundleError, match=r"index.faiss has sha256 .*, the manifest says"):
        verify_recall_bundle(root, trusted=trusted)
    index.write_bytes(original)
    (root / SIGNATURE).unlink()
    with pytest.raises(BundleError, match="manifest.sig is missing"):
        verify_recall_bundle(root, trusted=trusted)
    lying = dict(manifest, dim=manifest["dim"] * 2)  # signed by the trusted key, yet not what the files hold
    (root / "manifest.json").write_text(json.dumps(lying))
    (root / SIGNATURE).write_bytes(sign((root / "manifest.json").read_bytes(), key))
    with pytest.raises(BundleError, match=r"item_embeddings.npy holds float32 \(12, 16\), the manifest says float32 "
                                          r"\(12, 32\)"):
        verify_recall_bundle(root, trusted=trusted)


def test_bundles_are_immutable_and_only_one_vector_towers_ship(exported, tmp_path):
    model, root, _, _, _ = exported
    with pytest.raises(FileExistsError, match="bundles are immutable"):
        export_recall(model, catalog(), root, version_id="v1")
    with pytest.raises(TypeError, match="several vectors per user"):
        export_recall(build("pwprec_mi", catalog(), CFG, WIDTH), catalog(), tmp_path / "v2", version_id="v2")


def test_popular_items_are_the_clicked_ones_most_first(tmp_path):
    model = build("pwprec_ls", catalog(), CFG, WIDTH).eval()
    clicks = np.zeros(13)
    clicks[[3, 1, 7]] = [5, 2, 9]  # item indices: ids 102, 100, 106
    export_recall(model, catalog(), tmp_path / "v1", version_id="v1", clicks=clicks)
    assert np.load(tmp_path / "v1" / POPULAR).tolist() == [106, 102, 100]


def test_the_runtime_embeds_as_the_model_does_and_searches_the_index(exported):
    model, root, _, trusted, _ = exported
    runtime = RecallRuntime(root, trusted=trusted)
    # ids 100.. are indices 1..; 999 is unknown: it keeps its place, masked, as in training
    histories = [[100, 101, 102], [104, 999, 105, 106, 107, 108], [999], []]
    users, embedded = runtime.embed(histories)
    assert embedded.tolist() == [True, True, False, False] and not users[2:].any()
    index = torch.tensor([[0, 0, 1, 2, 3], [0, 6, 7, 8, 9], [0, 0, 0, 0, 0]])  # the last WIDTH=5 entries
    with torch.no_grad():
        expected = model.encode(index).numpy()
    assert np.abs(users[:2] - expected[:2]).max() < 1e-5
    assert runtime.rows(np.array([111, 100, 5])).tolist() == [11, 0, -1]
    items, scores = runtime.search(users[:1], 12)
    exact = np.load(root / ITEM_IDS)[np.argsort(-(np.load(root / ITEM_EMBEDDINGS) / np.linalg.norm(
        np.load(root / ITEM_EMBEDDINGS), axis=1, keepdims=True)) @ users[0])]
    assert items[0].tolist() == exact.tolist() and (np.diff(scores[0]) <= 1e-6).all()
