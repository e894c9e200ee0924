"""The cloud paging API: a page of ranked candidates, with their embedding rows for the client's model version.

    GET  /healthz                  the key-value store answers and the channels are readable
    GET  /v1/model?device_id=D     the version D should run (canary rollout, else stable) and its manifest URL
    POST /v1/page                  {user_id, device_id, model_version, page_no, recall_version} -> candidates
                                   (item_id, rank, score, item features), where they came from, and, per
                                   candidate, its item rows for that version
A client on a version whose embeddings are not in the store (unknown, or collected) gets 409 naming the version
it should fetch; a client without a model gets the candidates alone. With device tokens (`auth.py`), /v1/model
and /v1/page answer only a bearer token issued to the device the request names. Candidates come from a
`CandidateSource`: the recall (`RecallCandidates`: the version on the `recall` channel, or the one the client's
re-ranker was trained beside, while it is deployed) or, in the embedded world without one, the simulator's cloud
ranker. A request naming a recall version that is not served gets the same 409, naming the one to use.
"""

from __future__ import annotations

import base64
import functools
import json
import logging
import math
import re
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Annotated, NamedTuple, Protocol

import numpy as np
from fastapi import FastAPI, Header, HTTPException, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from deploy.cdn import model_key
from deploy.channels import (
    CHANNEL_NAMES,
    RECALL_CHANNEL,
    REPAIR,
    ForgedPointer,
    Pointer,
    assigned_version,
    read_channel,
)
from deploy.kv import KVError, row_dtype
from deploy.nrt import IDENTIFIER, hidden_items
from deploy.recall import BATCH, NRT, fetch_recall, recall_record
from deploy.serving.auth import DeviceTokens, TokenRefused
from deploy.targets import Targets
from edgerec.contracts.bundle import FEATURE_SPEC, MANIFEST, BundleError, item_row_ids
from edgerec.edge.runtime import ITEM_FEATURES, ItemCatalog
from edgerec.errors import MissingInput
from edgerec.features import encode_group
from edgerec.recall import RecallRuntime, from_bytes

POINTER_TTL_S = 5.0  # channel pointers are re-read this often (they are the only mutable objects)
RUNTIMES_KEPT = 4  # recall versions loaded at once: the channel's, the one before it, and room to switch
log = logging.getLogger(__name__)


class Candidates(NamedTuple):
    item_ids: np.ndarray
    scores: np.ndarray  # best first
    source: str  # "cloud ranker", or the recall's user embedding: "nrt", "batch" or "popularity" (no history)
    recall_version: str | None = None


class CandidateSource(Protocol):
    def candidates(self, user_id: str, page_no: int, ts_ms: int, recall_version: str | None = None) -> Candidates:
        """The page's candidates; `recall_version` asks for that recall version (RecallGone when not served)."""

    def served(self, recall_version: str) -> bool:
        """Whether candidates can come from that recall version."""


class RecallGone(Exception):
    def __init__(self, version: str, fetch: str | None):
        self.version, self.fetch = version, fetch


class SimulatedCloud:
    """The simulator's cloud ranker as the candidate source of the embedded world."""

    def __init__(self, cfg):
        from edgerec.sim.engine import Simulator

        self.sim = Simulator(cfg)
        self.catalog = ItemCatalog(self.sim.catalog.to_arrow())

    def candidates(self, user_id: str, page_no: int, ts_ms: int, recall_version: str | None = None) -> Candidates:
        match = re.fullmatch(r"u(\d+)", user_id)
        if match is None:
            raise HTTPException(422, f"unknown user {user_id!r}: the simulated world's users are u0000000, ...")
        return Candidates(*self.sim.cloud_candidates(int(match.group(1)), ts_ms, seed=page_no), "cloud ranker")

    def served(self, recall_version: str) -> bool:
        return False


class RecallCandidates:
    """The recall as the candidate source: the user's near-real-time vector, else their batch vector (both in the
    KV under the recall version), else the most popular items; the `k` nearest items in the version's index, less
    what the user deleted or was shown `shown_limit` times in the session (deploy.nrt), scores as the order."""

    def __init__(self, targets: Targets, cache: Path, k: int = 100, shown_limit: int = 3,
                 pointer_ttl_s: float = POINTER_TTL_S):
        self.targets, self.cache, self.k, self.shown_limit = targets, cache, k, shown_limit
        self.pointer_ttl_s, self._pointer, self._seen = pointer_ttl_s, (-math.inf, None), 0
        self._runtimes: OrderedDict[str, RecallRuntime] = OrderedDict()
        self._lock = threading.Lock()  # page requests run in a thread pool; a version is fetched once

    def _channel(self) -> Pointer | None:
        """The recall channel's pointer (re-read every pointer_ttl_s); a 503 naming the problem when it is forged
        or older than one already followed."""
        at, pointer = self._pointer
        if time.monotonic() - at >= self.pointer_ttl_s:
            try:
                pointer = read_channel(self.targets.cdn, RECALL_CHANNEL, self.targets.key)
            except ForgedPointer as e:
                raise HTTPException(503, f"the recall channel is not followed: {e}") from None
            if pointer and pointer.sequence < self._seen:
                raise HTTPException(503, f"the recall channel is not followed: its pointer has sequence "
                                         f"{pointer.sequence} after {self._seen} was served, an older pointer put "
                                         f"back; {REPAIR}")
            self._seen = max(self._seen, pointer.sequence if pointer else 0)
            self._pointer = (time.monotonic(), pointer)
        return pointer

    def serving(self) -> str | None:
        """The recall channel's version."""
        pointer = self._channel()
        return pointer.version if pointer else None

    def served(self, version: str) -> bool:
        """Only the channel's version and the one before it (the pair of re-rankers trained before the last
        promote), while deployed: a version collected, or never on the channel, is not served."""
        pointer = self._channel()
        return pointer is not None and version in (pointer.version, pointer.previous) and \
            recall_record(self.targets, version) is not None

    def runtime(self, version: str) -> RecallRuntime:
        with self._lock:
            if version in self._runtimes:
                self._runtimes.move_to_end(version)
                return self._runtimes[version]
            if recall_record(self.targets, version) is None:
                raise LookupError(version)
            runtime = self._runtimes[version] = fetch_recall(self.targets, version, self.cache)
            while len(self._runtimes) > RUNTIMES_KEPT:
                self._runtimes.popitem(last=False)  # the least recently used
            return runtime

    def candidates(self, user_id: str, page_no: int, ts_ms: int, recall_version: str | None = None) -> Candidates:
        version = recall_version or self.serving()
        if version is None:
            raise HTTPException(503, "no recall version is served yet: deploy one (`edgerec recall deploy`)")
        if recall_version is not None and not self.served(recall_version):
            raise RecallGone(recall_version, self.serving())
        try:
            runtime = self.runtime(version)
        except (LookupError, MissingInput, BundleError) as e:
            current = self.serving()
            if version != current:
                raise RecallGone(version, current) from None
            # the channel's own version: telling the client to use it would send it round in a loop
            log.error("recall %s, the recall channel's version, cannot be served: %s", version, e)
            raise HTTPException(503, f"the recall channel's version {version} cannot be served "
                                     f"({type(e).__name__}; the API's log has the detail)") from None
        hidden = hidden_items(self.targets.kv, user_id, self.shown_limit)
        source, vector = "popularity", None
        for table in (NRT, BATCH):
            raw = self.targets.kv.get_keyed(version, table, [user_id])[0]
            if raw:
                source, vector = table, from_bytes(raw)
                break
        if vector is None:
            items = runtime.popular_items(self.k + len(hidden))
            scores = np.linspace(1.0, 0.0, len(items), endpoint=False, dtype=np.float32)  # the order is the score
        else:
            found, score = runtime.search(vector[None, :], self.k + len(hidden))
            items, scores = found[0], score[0]
        keep = (items >= 0) & ~np.isin(items, np.fromiter(hidden, dtype=np.int64, count=len(hidden)))
        return Candidates(items[keep][:self.k], scores[keep][:self.k], source, version)


class RecallFirst:
    """The recall's candidates once a recall version is on its channel, the fallback's (the simulated cloud) before."""

    def __init__(self, recall: RecallCandidates, fallback: CandidateSource):
        self.recall, self.fallback = recall, fallback

    def candidates(self, user_id: str, page_no: int, ts_ms: int, recall_version: str | None = None) -> Candidates:
        use = self.recall if recall_version or self.recall.serving() else self.fallback
        return use.candidates(user_id, page_no, ts_ms, recall_version)

    def served(self, recall_version: str) -> bool:
        return self.recall.served(recall_version)


# request fields are bounded: anything else is a 422 naming the field, never a 500
VERSION = r"^v[0-9]{8}-[0-9a-f]{8}$"


class PageRequest(BaseModel):
    user_id: str = Field(pattern=IDENTIFIER)
    device_id: str = Field(pattern=IDENTIFIER)
    model_version: str | None = Field(None, pattern=VERSION,
                                      description="the bundle the client runs; null: no model on the device")
    page_no: int = Field(0, ge=0, le=10_000)
    recall_version: str | None = Field(None, pattern=VERSION, description=(
        "the recall version to take candidates from; null: the one the client's model was trained beside, while "
        "it is deployed, else the recall channel's"))


class VersionGone(Exception):
    def __init__(self, version: str, fetch: str | None):
        self.version, self.fetch = version, fetch


class VersionTables:
    """One version's layout (manifest, spec, table sizes) read once from the CDN and the KV's index record."""

    def __init__(self, targets: Targets, version: str):
        record = targets.kv.get_index(version)
        manifest = targets.cdn.get_bytes(model_key(version, MANIFEST))
        spec = targets.cdn.get_bytes(model_key(version, FEATURE_SPEC))
        if record is None or manifest is None or spec is None:
            raise LookupError(version)
        self.version, self.record = version, record
        self.manifest, self.spec = json.loads(manifest), json.loads(spec)

    def rows(self, targets: Targets, codes: np.ndarray, item_ids: np.ndarray) -> list[bytes]:
        """Each item's rows of every item table, concatenated (the table order of the manifest's item_rows)."""
        tables = self.record["tables"]
        row_ids = item_row_ids(self.manifest, {n: t["rows"] for n, t in tables.items()}, codes, item_ids)
        parts = []
        for name, ids in row_ids.items():
            unique, inverse = np.unique(ids, return_inverse=True)
            got = targets.kv.get_rows(self.version, name, unique,
                                      row_dtype(tables[name]["dim"], tables[name]["dtype"]).itemsize)
            if any(g is None for g in got):
                raise LookupError(self.version)
            parts.append([got[i] for i in inverse])
        return [b"".join(p) for p in zip(*parts, strict=True)]


def create_app(targets: Targets, source: CandidateSource, catalog: ItemCatalog,
               pointer_ttl_s: float = POINTER_TTL_S, tokens: DeviceTokens | None = None) -> FastAPI:
    app = FastAPI(title="EdgeRec paging API", description=__doc__)

    def authorized(device_id: str, authorization: str | None) -> None:
        if tokens is None:
            return
        try:
            holder = tokens.device(authorization)
        except TokenRefused as e:
            raise HTTPException(e.status, e.reason, headers={"WWW-Authenticate": "Bearer"}) from None
        if holder != device_id:
            raise HTTPException(403, "the device token was issued to another device")
    pointers: dict = {"at": -math.inf, "value": {}, "broken": {}}
    seen: dict[str, int] = {}  # the highest sequence each channel has shown: an older pointer put back is refused

    def read(name: str):
        pointer = read_channel(targets.cdn, name, targets.key)
        if pointer and pointer.sequence < seen.get(name, 0):
            raise ForgedPointer(f"the {name} pointer has sequence {pointer.sequence} after {seen[name]} was served: "
                                f"an older pointer put back; {REPAIR}")
        if pointer:
            seen[name] = pointer.sequence
        return pointer

    def channels() -> dict:
        """The channels' pointers; a broken canary leaves its devices on stable, a broken stable answers 503."""
        if time.monotonic() - pointers["at"] >= pointer_ttl_s:
            value, broken = {}, {}
            for name in CHANNEL_NAMES:
                try:
                    value[name] = read(name)
                except ForgedPointer as e:
                    value[name], broken[name] = None, str(e)
            pointers.update(at=time.monotonic(), value=value, broken=broken)
        if "stable" in pointers["broken"]:
            raise HTTPException(503, f"the stable channel is not followed: {pointers['broken']['stable']}")
        return pointers["value"]

    @functools.lru_cache(maxsize=8)
    def tables(version: str) -> VersionTables:
        return VersionTables(targets, version)

    @app.exception_handler(VersionGone)
    def gone(request, exc: VersionGone):
        return JSONResponse(status_code=409, content={
            "error": f"model version {exc.version} is not served (unknown or collected)",
            "fetch": exc.fetch, "manifest": model_key(exc.fetch, MANIFEST) if exc.fetch else None})

    @app.exception_handler(RecallGone)
    def recall_gone(request, exc: RecallGone):
        return JSONResponse(status_code=409, content={
            "error": f"recall version {exc.version} is not served (unknown or collected)", "use": exc.fetch})

    @app.get("/healthz")
    def healthz():
        try:
            versions = targets.kv.versions()
            current = {n: p.version if p else None for n, p in channels().items()}
        except KVError as e:
            raise HTTPException(503, str(e)) from e
        broken = pointers["broken"]
        return {"status": "degraded" if broken else "ok", "versions_in_kv": len(versions), "channels": current,
                "broken": broken}

    @app.get("/v1/model")
    def model(device_id: Annotated[str, Query(pattern=IDENTIFIER)],
              authorization: Annotated[str | None, Header()] = None):
        authorized(device_id, authorization)
        version = assigned_version(device_id, channels())
        return {"device_id": device_id, "version": version,
                "manifest": model_key(version, MANIFEST) if version else None}

    @app.post("/v1/page")
    def page(request: PageRequest, authorization: Annotated[str | None, Header()] = None):
        authorized(request.device_id, authorization)
        ts = int(time.time() * 1000)
        layout, recall = None, request.recall_version
        if request.model_version is not None:
            try:
                layout = tables(request.model_version)
            except LookupError:
                tables.cache_clear()
                raise VersionGone(request.model_version, assigned_version(request.device_id, channels())) from None
            paired = layout.manifest.get("recall_version")
            recall = recall or (paired if paired and source.served(paired) else None)
        found = source.candidates(request.user_id, request.page_no, ts, recall)
        item_ids, scores = found.item_ids, found.scores
        features = catalog.features(item_ids)
        body = {"user_id": request.user_id, "page_no": request.page_no, "model_version": request.model_version,
                "candidates_from": {"source": found.source, "recall_version": found.recall_version},
                "candidates": [{"item_id": int(i), "rank": r, "score": round(float(s), 6),
                                **{n: float(features[n][r]) for n in ITEM_FEATURES}}
                               for r, (i, s) in enumerate(zip(item_ids, scores, strict=True))]}
        if layout is None:
            return body
        try:
            codes = encode_group(layout.spec, "candidate", {**features, "cloud_score": scores})
            rows = layout.rows(targets, codes, item_ids)
        except LookupError:
            tables.cache_clear()
            raise VersionGone(request.model_version, assigned_version(request.device_id, channels())) from None
        record = layout.record["tables"]
        body["rows"] = {"dtype": next(iter(record.values()))["dtype"],
                        "dim": sum(record[n]["dim"] for n in layout.manifest["item_rows"]["tables"]),
                        "base64": [base64.b64encode(r).decode() for r in rows]}
        return body

    return app
