"""`edgerec ui`: the servers' commands and environments, the generated credentials, and the refusals that come before
any server starts. The servers themselves run in tests/integration/test_ui.py and tests/e2e/test_make_run.py."""

import json
import socket
import stat

import pytest
from typer.testing import CliRunner

from edgerec.config import load_settings
from pipeline import ui
from pipeline.cli import app

pytestmark = pytest.mark.unit


@pytest.fixture
def settings(tmp_path):
    return load_settings({"EDGEREC_HOME": str(tmp_path / "state")})


def tokens():
    counter = iter(range(100))
    return lambda n: f"secret-{next(counter)}-{'x' * n}"


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_credentials_are_generated_once_into_files_only_their_owner_reads(settings):
    creds = ui.ensure_credentials(settings, token=tokens())
    assert mode(settings.home / "ui") == 0o700
    for path in (creds.airflow_passwords, creds.mlflow_auth_config, creds.mlflow_secret_key):
        assert path.parent == settings.home / "ui" and mode(path) == 0o600, path
    assert json.loads(creds.airflow_passwords.read_text()) == {"admin": "secret-0-" + "x" * 18}
    ini = creds.mlflow_auth_config.read_text()
    assert f"database_uri = sqlite:///{settings.home / 'ui' / 'mlflow-auth.db'}\n" in ini
    assert "admin_username = admin\n" in ini and "admin_password = secret-1-" in ini
    assert "default_permission = NO_PERMISSIONS\n" in ini
    before = {p: p.read_text() for p in (creds.airflow_passwords, creds.mlflow_auth_config, creds.mlflow_secret_key)}
    assert ui.ensure_credentials(settings, token=tokens()) == creds
    assert {p: p.read_text() for p in before} == before  # kept: the servers already know them


def test_a_lost_mlflow_config_forgets_the_auth_database_whose_admin_password_it_held(settings):
    creds = ui.ensure_credentials(settings, token=tokens())
    database = settings.home / "ui" / "mlflow-auth.db"
    database.write_bytes(b"admin created with the lost password")
    creds.mlflow_auth_config.unlink()
    ui.ensure_credentials(settings, token=tokens())
    assert not database.exists() and creds.mlflow_auth_config.exists()


def test_the_airflow_server_listens_on_loopback_behind_the_simple_auth_manager_with_the_passwords_file(settings):
    creds = ui.ensure_credentials(settings, token=tokens())
    server = ui.airflow_server(settings, 18080, creds)
    assert server.command[1:] == ["api-server", "--host", "127.0.0.1", "--port", "18080", "--workers", "1",
                                  "--apps", "core"]
    assert server.env["AIRFLOW__CORE__AUTH_MANAGER"].endswith("SimpleAuthManager")
    assert server.env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] == "admin:admin"
    assert server.env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS"] == "False"
    assert server.env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"] == str(creds.airflow_passwords)
    assert server.env["AIRFLOW_HOME"] == str(settings.airflow_home)
    assert server.url + server.page == "http://127.0.0.1:18080/dags/edgerec_daily_retrain"
    assert server.log == settings.home / "logs" / "ui-airflow.log"
    password = json.loads(creds.airflow_passwords.read_text())["admin"]
    assert not any(password in part for part in [*server.command, *server.env.values()])


def test_the_mlflow_server_reads_the_embedded_store_behind_basic_auth(settings, monkeypatch):
    monkeypatch.setenv("MLFLOW_AUTH_ADMIN_PASSWORD", "an-ambient-one")  # would win over the ini's on first start
    creds = ui.ensure_credentials(settings, token=tokens())
    server = ui.mlflow_server(settings, 15000, creds)
    command = server.command
    assert command[command.index("--app-name") + 1] == "basic-auth"
    assert command[command.index("--backend-store-uri") + 1] == f"sqlite:///{settings.mlflow_dir / 'mlflow.db'}"
    assert command[command.index("--host") + 1] == "127.0.0.1" and command[command.index("--port") + 1] == "15000"
    assert server.env["MLFLOW_AUTH_CONFIG_PATH"] == str(creds.mlflow_auth_config)
    assert server.env["MLFLOW_FLASK_SERVER_SECRET_KEY"] == creds.mlflow_secret_key.read_text()
    assert "MLFLOW_AUTH_ADMIN_PASSWORD" not in server.env
    assert server.url + server.page == "http://127.0.0.1:15000/#/models/edgerec-reranker"
    admin_password = creds.mlflow_auth_config.read_text().split("admin_password = ")[1].strip()
    assert not any(admin_password in part for part in [*command, *server.env.values()])


def test_the_summary_says_where_to_look_and_where_the_passwords_are_never_what_they_are(settings):
    creds = ui.ensure_credentials(settings, token=tokens())
    servers = [ui.airflow_server(settings, 18080, creds), ui.mlflow_server(settings, 15000, creds)]
    text = ui.summary(settings, servers, creds, "/state/dbt/target/index.html")
    assert text.splitlines() == [
        "Airflow UI  http://127.0.0.1:18080/dags/edgerec_daily_retrain",
        f"            user admin, password in {creds.airflow_passwords}",
        "MLflow UI   http://127.0.0.1:15000/#/models/edgerec-reranker",
        f"            user admin, password in {creds.mlflow_auth_config} (admin_password)",
        f"Data Docs   {ui.data_docs_index(settings)} (not built yet)",
        "dbt docs    /state/dbt/target/index.html",
        "Ctrl-C stops both.",
    ]
    assert "secret-" not in text


def test_the_model_page_is_the_registered_models(settings):
    from edgerec.registry import REGISTERED_MODEL

    assert ui.REGISTERED_MODEL == REGISTERED_MODEL


def test_a_tracking_server_is_not_served_again(tmp_path):
    settings = load_settings({"EDGEREC_HOME": str(tmp_path), "EDGEREC_MLFLOW_TRACKING_URI": "https://mlflow.example"})
    with pytest.raises(ui.UiError, match="is a tracking server"):
        ui.mlflow_store(settings)


def test_a_taken_port_is_refused_naming_it_and_the_option_that_moves_it():
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(ui.UiError) as refused:
            ui.check_port_free(port, "MLflow", "--mlflow-port")
    assert f"port {port} on 127.0.0.1 is taken" in str(refused.value)
    assert "the MLflow UI cannot listen there" in str(refused.value) and "--mlflow-port" in str(refused.value)
    ui.check_port_free(port, "MLflow", "--mlflow-port")  # free again once its holder closed


def test_the_last_run_day_is_the_newest_run_log(settings):
    with pytest.raises(ui.UiError, match=r"no run in .* yet .*run `make run` first"):
        ui.last_run_day(settings)
    (settings.home / "logs").mkdir(parents=True)
    for ds in ("2026-11-02", "2026-11-03", "2026-11-01"):
        settings.layout(ds).run_log.write_text("")
    assert ui.run_days(settings) == ["2026-11-01", "2026-11-02", "2026-11-03"]
    assert ui.last_run_day(settings) == "2026-11-03"


def test_the_command_on_a_state_without_a_run_says_to_run_first_and_fails(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEREC_HOME", str(tmp_path / "empty"))
    result = CliRunner().invoke(app, ["ui"])
    assert result.exit_code == 1
    assert "run `make run` first" in result.output
    assert not (tmp_path / "empty" / "ui").exists()  # nothing generated for a state with nothing to show
