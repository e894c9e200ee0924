"""Deploy fixtures: real stores (SQLite file, the machine's Redis or a redis-server of our own, S3 and DynamoDB
through moto's server on 127.0.0.1) and registered versions with tiny bundles (no training needed)."""

from __future__ import annotations

import http.client
import shutil
import socket
import subprocess
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis

from deploy.targets import open_targets
from edgerec import registry
from edgerec.config import load_settings
from edgerec.contracts import signing
from edgerec.contracts.bundle import MANIFEST, sha256_of
from tests.bundles import make_bundle, order_bundle

V1, V2, V3 = "v20261101-0000aaaa", "v20261102-0000bbbb", "v20261103-0000cccc"
# versions that keep the cloud's order of the candidates, or reverse it (a deliberately harmful version)
KEEPS, REVERSES, KEEPS_TOO = "v20261102-0000cafe", "v20261102-0000dead", "v20261103-0000beef"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def moto_endpoint():
    """moto in server mode: a real HTTP endpoint for boto3 (S3, DynamoDB)."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture(autouse=True)
def aws_credentials(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


def _redis_up(url: str) -> bool:
    try:
        return redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except redis.ConnectionError:
        return False


class RedisServer:
    """A redis-server of our own (nothing kept on disk), which a test may stop and start again."""

    def __init__(self, password: str | None = None):
        self.port, self.password = free_port(), password
        self.url = f"redis://{f':{password}@' if password else ''}127.0.0.1:{self.port}/0"
        self.process = None

    def start(self):
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed (Debian: apt-get install redis-server)")
        auth = ["--requirepass", self.password] if self.password else []
        self.process = subprocess.Popen([binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                         "--appendonly", "no", *auth], stdout=subprocess.DEVNULL)
        for _ in range(100):
            if _redis_up(self.url):
                return self
            time.sleep(0.05)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self):
        if self.process:
            self.process.kill()
            self.process.wait()
            self.process = None


@pytest.fixture
def own_redis():
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_url():
    """The machine's Redis on 127.0.0.1:6379 when it runs (this project's machines), else one of our own."""
    if _redis_up("redis://127.0.0.1:6379/0"):
        yield "redis://127.0.0.1:6379/0"
        return
    server = RedisServer().start()
    yield server.url
    server.stop()


@pytest.fixture
def redis_kv_url(redis_url):
    """A key prefix of this test's own, removed afterwards."""
    prefix = f"edgerec-test-{uuid.uuid4().hex[:8]}"
    yield f"{redis_url}?prefix={prefix}"
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(f"{prefix}:*", count=1000))
    if keys:
        client.delete(*keys)


@pytest.fixture(scope="session")
def release_keys(tmp_path_factory) -> dict[str, str]:
    """The signing key the test bundles are signed with, and the folder that trusts it (as settings)."""
    folder = tmp_path_factory.mktemp("keys")
    key = signing.load_signing_key(folder / "signing.pem", create=True)
    signing.trust(folder / "trusted", key.public_key())
    return {"EDGEREC_RELEASE_SIGNING_KEY": str(folder / "signing.pem"),
            "EDGEREC_RELEASE_TRUSTED_KEYS": str(folder / "trusted")}


@pytest.fixture(scope="session")
def bundles(tmp_path_factory, release_keys):
    """Three exported versions (different weights), signed, small shards so tables span several."""
    folder = tmp_path_factory.mktemp("bundles")
    signer = signing.load_signing_key(Path(release_keys["EDGEREC_RELEASE_SIGNING_KEY"]))
    return {v: (make_bundle(folder / v, seed=i, rows_per_shard=100, signer=signer), folder / v)
            for i, v in enumerate((V1, V2, V3))}


@pytest.fixture(scope="session")
def ordered_bundles(tmp_path_factory, release_keys):
    """Signed bundles whose re-ranker keeps the cloud's order (KEEPS, KEEPS_TOO) or reverses it (REVERSES)."""
    folder = tmp_path_factory.mktemp("ordered")
    signer = signing.load_signing_key(Path(release_keys["EDGEREC_RELEASE_SIGNING_KEY"]))
    return {v: (order_bundle(folder / v, reverse=v == REVERSES, signer=signer), folder / v)
            for v in (KEEPS, REVERSES, KEEPS_TOO)}


def add_versions(settings, bundles: dict) -> None:
    """Copy each (manifest, bundle) into the state directory and register it, blessed and servable."""
    for v, (manifest, root) in bundles.items():
        shutil.copytree(root, settings.bundles_dir / v)
        register(settings, v, manifest)


def register(settings, version_id: str, manifest: dict, blessed: bool = True, servable: bool = True) -> str:
    """A registered version with the tags the gates would have written (no training: the bundle is given)."""
    client = registry.connect(settings)
    if not client.search_registered_models(f"name = '{registry.REGISTERED_MODEL}'"):
        client.create_registered_model(registry.REGISTERED_MODEL)
    tags = {registry.VERSION_TAG: version_id, registry.BLESSED: str(blessed).lower(),
            registry.SERVABLE: str(servable).lower(), "feature_spec_sha": manifest["feature_spec_sha256"],
            **({registry.BUNDLE_SHA: sha256_of(bundle)} if (bundle := settings.bundles_dir / version_id / MANIFEST)
               .exists() else {}),
            "ds": f"{version_id[1:5]}-{version_id[5:7]}-{version_id[7:9]}"}
    return str(client.create_model_version(registry.REGISTERED_MODEL, source=str(settings.bundles_dir / version_id),
                                       tags=tags).version)


@pytest.fixture
def released(tmp_path, bundles, release_keys):
    """A state directory whose registry holds V1..V3 (blessed, servable, signed by a trusted key) with their
    bundles; embedded stores."""

    def make(**env):
        settings = load_settings({"EDGEREC_HOME": str(tmp_path / "state"), "EDGEREC_RELEASE_ACTOR": "alice",
                                  **release_keys, **env})
        add_versions(settings, bundles)
        return settings, open_targets(settings)

    return make


class ThrottlingProxy:
    """An HTTP proxy in front of moto that answers 503 SlowDown to PUTs once `allow_puts` of them went through
    (None: never throttles)."""

    def __init__(self, upstream: str):
        target = urlsplit(upstream)
        proxy = self
        self.allow_puts: int | None = None
        self.puts = 0

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))
                if self.command == "PUT" and proxy.allow_puts is not None:
                    if proxy.puts >= proxy.allow_puts:
                        error = b"<Error><Code>SlowDown</Code><Message>Reduce your request rate.</Message></Error>"
                        self.send_response(503)
                        self.send_header("Content-Length", str(len(error)))
                        self.end_headers()
                        self.wfile.write(error)
                        return
                    proxy.puts += 1
                conn = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "expect")}
                conn.request(self.command, self.path, body=body, headers=headers)
                answer = conn.getresponse()
                data = answer.read()
                self.send_response(answer.status)
                for k, v in answer.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                conn.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


@pytest.fixture
def throttled_s3(moto_endpoint):
    proxy = ThrottlingProxy(moto_endpoint)
    yield proxy
    proxy.close()
