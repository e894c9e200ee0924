"""The evaluation gate's rule on crafted metrics, and the training settings."""

import pytest

from edgerec.config import load_settings
from edgerec.errors import ConfigError
from training.pipeline import judge, models_to_train, train_config

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("gauc", "champion", "blessed", "says"), [
    (0.60, None, True, "no champion to compare with, judged by the floor alone"),
    (0.54, None, False, "below the floor 0.55000"),
    (0.54, 0.50, False, "below the floor 0.55000"),  # the floor holds even against a weaker champion
    (0.62, 0.61, True, "the champion's 0.61000"),
    (0.6085, 0.61, True, "minus 0.00200"),  # within the tolerance
    (0.6075, 0.61, False, "below the champion's 0.61000 on the same test set minus the tolerance 0.00200"),
    (float("nan"), None, False, "below the floor"),
])
def test_gate_rule(gauc, champion, blessed, says):
    ok, reason = judge(gauc, floor=0.55, champion_gauc=champion, tolerance=0.002)
    assert ok is blessed and says in reason


def test_models_to_train_keep_the_paper_order_and_always_the_full_model():
    def models(value):
        return models_to_train(load_settings({"EDGEREC_TRAIN_MODELS": value}))

    assert models("all") == ["dnn_rank", "dlcm", "crban_hubsm_ie", "crban_hubsm_ipv", "crban_huism_ie_ipv",
                             "crban_hubsm_ie_ipv"]
    assert models("dlcm, dnn_rank") == ["dnn_rank", "dlcm", "crban_hubsm_ie_ipv"]
    with pytest.raises(ConfigError, match="unknown model"):
        models("dlcm,gbdt")


def test_train_config_from_settings_and_file(tmp_path):
    path = tmp_path / "train.json"
    path.write_text('{"hidden": 16, "epochs": 7}')
    cfg = train_config(load_settings({"EDGEREC_TRAIN_CONFIG": str(path), "EDGEREC_TRAIN_EPOCHS": "2"}))
    assert (cfg.hidden, cfg.epochs, cfg.lr, cfg.device) == (16, 2, 0.015, "auto")
    path.write_text('{"lr": 0}')
    with pytest.raises(ConfigError, match=r"train_config.lr = 0: .*\(allowed: > 0.0"):
        train_config(load_settings({"EDGEREC_TRAIN_CONFIG": str(path)}))
