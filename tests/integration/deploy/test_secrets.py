"""No secret in any output: a password in the key-value store's URL, the webhook's token and the release key never
appear in what the release commands print or in any file they write (audit log, deploy journal, registry tags)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.deploy.conftest import V1, V2, RedisServer

pytestmark = pytest.mark.integration

EDGEREC = str(Path(sys.executable).with_name("edgerec"))
PASSWORD, TOKEN, KEY, DEVICE_KEY = "pa55-w0rd-xyz", "t0ken-abc-123", "release-key-" + "k" * 32, "device-" + "d" * 32


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_no_secret_reaches_any_printed_line_or_written_file(released, release_keys):
    server = RedisServer(password=PASSWORD).start()
    port = closed_port()
    env = {"EDGEREC_KV_URL": f"redis://:{PASSWORD}@127.0.0.1:{server.port}/0?prefix=sec",
           "EDGEREC_RELEASE_KEY": KEY, "EDGEREC_ALERT_WEBHOOK_URL": f"http://127.0.0.1:{port}/services/T0/B0/{TOKEN}",
           "EDGEREC_SERVING_TOKEN_KEY": DEVICE_KEY}
    try:
        settings, targets = released(**env)
        targets.close()

        def run(*args: str) -> subprocess.CompletedProcess:
            return subprocess.run([EDGEREC, *args], capture_output=True, text=True, timeout=600,
                                  env=os.environ | {"EDGEREC_HOME": str(settings.home), **release_keys, **env})

        runs = [run("deploy", V1), run("release", "promote", V1, "--channel", "canary", "--percent", "10",
                                       "--reason", "secrets test"),
                run("release", "status"), run("release", "verify", V1), run("config", "show"),
                run("serve", "--load-test", "20"), run("alerts", "test")]
        assert [r.returncode for r in runs] == [0, 0, 0, 0, 0, 0, 1], [r.stderr[-2000:] for r in runs]
        kv = f"redis://:***@127.0.0.1:{server.port}/0?prefix=sec"
        assert kv in runs[0].stdout  # the store is still named, without its password
        assert runs[-1].stdout == "sent to: log\n"
        assert f"not delivered: webhook: alert webhook http://127.0.0.1:{port}/*** failed after 3 attempts" in \
            runs[-1].stderr
        server.stop()  # a store that is gone: its error names it, without the password
        runs.append(run("deploy", V2))
        assert runs[-1].returncode == 1 and f"key-value store {kv}" in runs[-1].stderr
    finally:
        server.stop()
    printed = "".join(r.stdout + r.stderr for r in runs)
    written = [p for p in settings.home.rglob("*") if p.is_file()]
    assert len(written) > 20 and any(p.name == "audit.jsonl" for p in written)
    for secret in (PASSWORD, TOKEN, KEY, DEVICE_KEY):
        assert secret not in printed, secret
        assert not [p for p in written if secret.encode() in p.read_bytes()], secret
