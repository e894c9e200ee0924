import pytest

from edgerec.config import load_settings
from edgerec.errors import ConfigError
from training.recall.pipeline import models_to_train, recall_config

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("value", "keys"), [
    ("pwprec_ls", ["pwprec_ls"]),
    ("sasrec, gru4rec", ["pwprec_ls", "gru4rec", "sasrec"]),  # the comparison's order; the registered model always
    ("all", ["pwprec_ls", "pwprec_mi", "gru4rec", "sasrec", "comirec_sa"]),
])
def test_the_recall_models_setting(value, keys):
    assert models_to_train(load_settings({"EDGEREC_RECALL_MODELS": value})) == keys


def test_an_unknown_recall_model_is_named_with_the_choices():
    with pytest.raises(ConfigError, match=r"EDGEREC_RECALL_MODELS: unknown model\(s\) pwprec; choose from pwprec_ls"):
        models_to_train(load_settings({"EDGEREC_RECALL_MODELS": "pwprec"}))


def test_the_recall_config_file_and_epochs(tmp_path):
    path = tmp_path / "recall.json"
    path.write_text('{"dim": 32, "epochs": 3}')
    cfg = recall_config(load_settings({"EDGEREC_RECALL_CONFIG": str(path), "EDGEREC_RECALL_EPOCHS": "5"}))
    assert (cfg.dim, cfg.epochs) == (32, 5)
    path.write_text('{"dim": 2}')
    with pytest.raises(ConfigError, match="dim"):
        recall_config(load_settings({"EDGEREC_RECALL_CONFIG": str(path)}))
