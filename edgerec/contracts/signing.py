"""Ed25519 signatures of bundle manifests: what ships is what was signed at export.

The release's signing key signs `manifest.json` at export and the signature travels beside it as `manifest.sig`
({key_id, algorithm, signature}). Everything downstream (deploy, verify, promote, the phone) holds only public
keys, by key id, so it can check a bundle but never sign one; rotating the key is adding the new public key to
the trusted ones, signing with the new key, and dropping the old public key once no version signed with it is
deployed (docs/operations.md).
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from edgerec.errors import ContractError

SIGNATURE = "manifest.sig"
ALGORITHM = "ed25519"


class SignatureError(ContractError):
    """A manifest whose signature is missing, made with a key nobody trusts, or does not match its bytes."""


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def load_signing_key(path: Path, create: bool = False) -> Ed25519PrivateKey:
    """The private key in PEM at `path`; with `create`, a new one written there first (mode 600) when missing."""
    if not path.exists():
        if not create:
            raise SignatureError(f"no signing key at {path} (EDGEREC_RELEASE_SIGNING_KEY)")
        path.parent.mkdir(parents=True, exist_ok=True)
        pem = Ed25519PrivateKey.generate().private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption())
        path.touch(mode=0o600)
        path.write_bytes(pem)
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except ValueError as e:
        raise SignatureError(f"{path} is not a PEM private key ({e})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SignatureError(f"{path} holds a {type(key).__name__}, not an Ed25519 key")
    return key


def trust(folder: Path, public: Ed25519PublicKey) -> Path:
    """Add a public key to the trusted ones (`<key id>.pub`, PEM)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{key_id(public)}.pub"
    path.write_bytes(public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return path


def exporter_key(path: Path, trusted: Path, embedded: bool) -> Ed25519PrivateKey:
    """The signing key of the exporting host. The embedded default creates it once and trusts its public key;
    a configured key must exist and be trusted already (a rotation adds the public key first)."""
    key = load_signing_key(path, create=embedded)
    if embedded and key_id(key.public_key()) not in trusted_keys(trusted):
        trust(trusted, key.public_key())
    return key


def trusted_keys(folder: Path) -> dict[str, Ed25519PublicKey]:
    """The public keys a bundle may be signed with, by key id (the files `<key id>.pub` in folder)."""
    keys = {}
    for path in sorted(folder.glob("*.pub")) if folder.is_dir() else ():
        try:
            public = serialization.load_pem_public_key(path.read_bytes())
        except ValueError as e:
            raise SignatureError(f"{path} is not a PEM public key ({e})") from None
        if not isinstance(public, Ed25519PublicKey) or key_id(public) != path.stem:
            raise SignatureError(f"{path} is not the Ed25519 public key its name says")
        keys[path.stem] = public
    return keys


def sign(manifest: bytes, key: Ed25519PrivateKey) -> bytes:
    """The bytes of `manifest.sig` for these manifest bytes."""
    record = {"key_id": key_id(key.public_key()), "algorithm": ALGORITHM,
              "signature": base64.b64encode(key.sign(manifest)).decode()}
    return json.dumps(record, indent=2).encode() + b"\n"


def check(manifest: bytes, signature: bytes | None, keys: dict[str, Ed25519PublicKey], where: str) -> str:
    """The key id that signed these manifest bytes; SignatureError naming what is wrong."""
    if signature is None:
        raise SignatureError(f"{where}: {SIGNATURE} is missing: the bundle was not signed at export")
    try:
        record = json.loads(signature)
        kid, raw = record["key_id"], base64.b64decode(record["signature"], validate=True)
    except (ValueError, KeyError, TypeError) as e:
        raise SignatureError(f"{where}: {SIGNATURE} is not a signature record ({e})") from None
    if record.get("algorithm") != ALGORITHM:
        raise SignatureError(f"{where}: {SIGNATURE} uses {record.get('algorithm')!r}, not {ALGORITHM}")
    if kid not in keys:
        raise SignatureError(f"{where}: signed with key {kid}, which is not trusted (trusted: "
                             f"{', '.join(keys) or 'none'})")
    try:
        keys[kid].verify(raw, manifest)
    except InvalidSignature:
        raise SignatureError(f"{where}: {SIGNATURE} does not match the manifest's bytes (key {kid}): the "
                             "manifest changed after it was signed") from None
    return kid
