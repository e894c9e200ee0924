import numpy as np
import pytest

from training.recall.data import Catalog, Samples, right_aligned

pytestmark = pytest.mark.unit


def catalog() -> Catalog:
    items = {"item_id": np.array([30, 10, 20]), "category": np.array([7, 5, 7]), "brand": np.array([1, 2, 3]),
             "gender": np.array([0, 1, 2]), "price_level": np.array([1, 1, 1]), "age_level": np.array([0, 0, 0]),
             "bc_type": np.array([0, 1, 0])}
    return Catalog.of(items)


def test_items_are_numbered_by_id_from_one_and_unknown_items_read_zero():
    c = catalog()
    assert c.item_ids.tolist() == [10, 20, 30]
    assert c.index(np.array([30, 10, 99, 20, 5])).tolist() == [3, 1, 0, 2, 0]
    assert c.codes[:, 0].tolist() == [0, 1, 2, 2]  # category 5 -> 1, 7 -> 2; row 0 is padding


def test_a_saved_vocabulary_codes_a_new_value_as_unknown():
    saved = catalog().vocabularies
    items = {"item_id": np.array([10, 40]), "category": np.array([5, 9]), "brand": np.array([2, 2]),
             "gender": np.array([1, 1]), "price_level": np.array([1, 1]), "age_level": np.array([0, 0]),
             "bc_type": np.array([1, 1])}
    assert Catalog.of(items, saved).codes[:, 0].tolist() == [0, 1, 0]


def test_histories_are_right_aligned_and_keep_their_latest_entries():
    history, length = right_aligned([[10, 20], [10, 20, 30, 10], []], 3, catalog())
    assert history.tolist() == [[0, 1, 2], [2, 3, 1], [0, 0, 0]]
    assert length.tolist() == [2, 3, 0]


def test_the_session_task_keeps_only_the_sessions_part_of_each_history():
    samples = Samples(history=np.array([[1, 2, 3], [0, 2, 3], [0, 0, 1]]), length=np.array([3, 2, 1]),
                      session=np.array([2, 0, 1]), target=np.array([5, 6, 7]), user=np.array([0, 1, 2]))
    session = samples.for_task("session")
    assert session.history.tolist() == [[0, 2, 3], [0, 0, 1]]  # the second click had no earlier one in its session
    assert session.target.tolist() == [5, 7] and session.length.tolist() == [2, 1]
    assert samples.for_task("user") is samples
