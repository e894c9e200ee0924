"""Device tokens of the paging API: issued per device, checked for signature, expiry and device."""

import pytest
from typer.testing import CliRunner

from deploy.serving.auth import DeviceTokens, TokenRefused
from edgerec.errors import ConfigError
from pipeline.cli import app

pytestmark = pytest.mark.unit
KEY = b"t" * 32


def test_a_token_names_its_device_until_it_expires():
    tokens = DeviceTokens(KEY)
    token = tokens.issue("dev-1", ttl_s=60, now=1_000)
    assert token.startswith("dev-1.1060.")
    assert tokens.device(f"Bearer {token}", now=1_059) == "dev-1"
    refusals = {"missing": (None, 1_000), "not bearer": (f"Basic {token}", 1_000),
                "malformed": ("Bearer dev-1", 1_000), "forged": (f"Bearer {token[:-1]}0", 1_000),
                "other key": (f"Bearer {DeviceTokens(b'u' * 32).issue('dev-1', now=1_000)}", 1_000),
                "expired": (f"Bearer {token}", 1_061)}
    reasons = {}
    for name, (header, now) in refusals.items():
        with pytest.raises(TokenRefused) as refused:
            tokens.device(header, now=now)
        reasons[name] = (refused.value.status, refused.value.reason)
    assert reasons == {
        "missing": (401, "a device token is required: Authorization: Bearer <token>"),
        "not bearer": (401, "a device token is required: Authorization: Bearer <token>"),
        "malformed": (401, "the device token is malformed"),
        "forged": (401, "the device token's signature does not match"),
        "other key": (401, "the device token's signature does not match"),
        "expired": (401, "the device token has expired")}


def test_a_short_token_key_is_refused():
    with pytest.raises(ConfigError, match="EDGEREC_SERVING_TOKEN_KEY is 5 bytes"):
        DeviceTokens(b"short")


def test_serve_refuses_to_answer_anyone_without_tokens_and_issues_them_with_a_key(tmp_path):
    env = {"EDGEREC_HOME": str(tmp_path)}
    open_to_all = CliRunner().invoke(app, ["serve", "--host", "0.0.0.0"], env=env)
    assert open_to_all.exit_code == 2 and "without authentication: set EDGEREC_SERVING_TOKEN_KEY" in open_to_all.output
    issued = CliRunner().invoke(app, ["serve", "--token", "dev-7"], env=env | {"EDGEREC_SERVING_TOKEN_KEY": "t" * 32})
    assert issued.exit_code == 0 and DeviceTokens(KEY).device(f"Bearer {issued.output.strip()}") == "dev-7"
