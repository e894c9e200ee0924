"""DynamoDB key-value backend: one item per row, written by BatchWriteItem with retries.

Table (created here when missing; Terraform owns it in the cloud): partition key `pk` (S), sort key `sk` (S).
    pk = "{version}#{table}", sk = id as 10 digits, attribute v (B) = the row's bytes
    pk = "index",             sk = version,         attribute record (S) = the index record (JSON)
    pk = "{version}#{table}#keyed", sk = the key,   attribute v (B) = a keyed row (the recall's user vectors)
BatchWriteItem takes 25 items and may return some unprocessed (throttling): those are retried with exponential
backoff and jitter until MAX_ATTEMPTS, then the push fails naming how many rows are still unwritten.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Callable

import boto3
import numpy as np
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from deploy.kv import KVError, KVStore, TableScan, as_row_bytes

BATCH = 25
MAX_ATTEMPTS = 8
INDEX_PK = "index"
PARTITION_KEY, SORT_KEY = "pk", "sk"  # both strings; terraform/modules/kv declares the same
TTL_ATTRIBUTE = "expires_at"  # enabled on the table (as in Terraform); gc deletes collected rows itself (see README)


def batch_write(write: Callable[[dict], dict], table: str, requests: list[dict], *,
                sleep: Callable[[float], None] = time.sleep, attempts: int = MAX_ATTEMPTS) -> None:
    """Write `requests` (PutRequest/DeleteRequest dicts) 25 at a time through `write` (BatchWriteItem), retrying
    what comes back unprocessed with backoff 50 ms * 2^attempt (jittered)."""
    for lo in range(0, len(requests), BATCH):
        pending = requests[lo:lo + BATCH]
        for attempt in range(attempts):
            answer = write({table: pending})
            pending = answer.get("UnprocessedItems", {}).get(table, [])
            if not pending:
                break
            sleep(0.05 * 2 ** attempt * (0.5 + random.random()))
        else:
            raise KVError(f"DynamoDB table {table}: {len(pending)} writes still unprocessed after {attempts} "
                          f"attempts (throttled); re-run to complete")


class DynamoKV(KVStore):
    def __init__(self, table: str, endpoint_url: str | None = None, region: str | None = None):
        self.table = table
        self.url = f"dynamodb://{table}" + (f"?endpoint_url={endpoint_url}" if endpoint_url else "")
        config = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=30)
        self.client = boto3.client("dynamodb", endpoint_url=endpoint_url, region_name=region or "us-east-1",
                                   config=config)
        self._call(self._ensure_table)

    def _call(self, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (BotoCoreError, ClientError) as e:
            raise KVError(f"key-value store {self.url}: {e}") from e

    def _ensure_table(self) -> None:
        if self.table in self.client.list_tables().get("TableNames", []):
            return
        self.client.create_table(TableName=self.table, BillingMode="PAY_PER_REQUEST",
                                 KeySchema=[{"AttributeName": PARTITION_KEY, "KeyType": "HASH"},
                                            {"AttributeName": SORT_KEY, "KeyType": "RANGE"}],
                                 AttributeDefinitions=[{"AttributeName": PARTITION_KEY, "AttributeType": "S"},
                                                       {"AttributeName": SORT_KEY, "AttributeType": "S"}])
        self.client.get_waiter("table_exists").wait(TableName=self.table)
        self.client.update_time_to_live(TableName=self.table, TimeToLiveSpecification={
            "Enabled": True, "AttributeName": TTL_ATTRIBUTE})

    def _write(self, requests: list[dict]) -> None:
        self._call(batch_write, lambda items: self.client.batch_write_item(RequestItems=items), self.table, requests)

    def put_rows(self, version: str, table: str, start: int, rows: np.ndarray) -> None:
        pk = {"S": f"{version}#{table}"}
        self._write([{"PutRequest": {"Item": {"pk": pk, "sk": {"S": f"{start + i:010d}"}, "v": {"B": v.tobytes()}}}}
                     for i, v in enumerate(as_row_bytes(rows))])

    def _query(self, pk: str, **extra) -> list[dict]:
        items, kwargs = [], {"TableName": self.table, "KeyConditionExpression": "pk = :pk",
                             "ExpressionAttributeValues": {":pk": {"S": pk}}, **extra}
        while True:
            page = self._call(self.client.query, **kwargs)
            items += page["Items"]
            if "LastEvaluatedKey" not in page:
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def get_rows(self, version: str, table: str, ids: np.ndarray, row_bytes: int) -> list[bytes | None]:
        return self._get(f"{version}#{table}", [f"{int(i):010d}" for i in ids])

    def _get(self, pk: str, wanted: list[str]) -> list[bytes | None]:
        """The v attribute of the items (pk, sk) for each sk wanted, 100 keys per BatchGetItem."""
        found: dict[str, bytes] = {}
        unique = sorted(set(wanted))
        for lo in range(0, len(unique), 100):
            request = {self.table: {"Keys": [{"pk": {"S": pk}, "sk": {"S": sk}} for sk in unique[lo:lo + 100]]}}
            while request:
                answer = self._call(self.client.batch_get_item, RequestItems=request)
                found |= {i["sk"]["S"]: i["v"]["B"] for i in answer["Responses"].get(self.table, [])}
                request = answer.get("UnprocessedKeys") or None
        return [found.get(sk) for sk in wanted]

    def scan(self, version: str, table: str, rows: int, row_bytes: int) -> TableScan:
        items = self._query(f"{version}#{table}")  # sorted by sk, i.e. by id
        buffer = np.zeros((rows, row_bytes), dtype=np.uint8)
        present = 0
        for item in items:
            i = int(item["sk"]["S"])
            if i < rows:
                buffer[i] = np.frombuffer(item["v"]["B"], dtype=np.uint8)
                present += 1
        return TableScan(present, hashlib.sha256(buffer.tobytes()).hexdigest())

    def put_index(self, version: str, record: dict) -> None:
        self._call(self.client.put_item, TableName=self.table,
                   Item={"pk": {"S": INDEX_PK}, "sk": {"S": version}, "record": {"S": json.dumps(record)}})

    def get_index(self, version: str) -> dict | None:
        item = self._call(self.client.get_item, TableName=self.table,
                          Key={"pk": {"S": INDEX_PK}, "sk": {"S": version}}).get("Item")
        return json.loads(item["record"]["S"]) if item else None

    def versions(self) -> list[str]:
        return [i["sk"]["S"] for i in self._query(INDEX_PK, ProjectionExpression="sk")]

    def put_keyed(self, version: str, table: str, keys: list[str], values: list[bytes]) -> None:
        pk = {"S": f"{version}#{table}#keyed"}
        self._write([{"PutRequest": {"Item": {"pk": pk, "sk": {"S": k}, "v": {"B": v}}}}
                     for k, v in zip(keys, values, strict=True)])

    def get_keyed(self, version: str, table: str, keys: list[str]) -> list[bytes | None]:
        return self._get(f"{version}#{table}#keyed", keys)

    def delete_keyed(self, version: str, table: str) -> None:
        keys = self._query(f"{version}#{table}#keyed", ProjectionExpression="pk, sk")
        self._write([{"DeleteRequest": {"Key": {"pk": k["pk"], "sk": k["sk"]}}} for k in keys])

    def delete_version(self, version: str, tables: dict[str, int]) -> None:
        self._call(self.client.delete_item, TableName=self.table, Key={"pk": {"S": INDEX_PK}, "sk": {"S": version}})
        for table in tables:
            pk = f"{version}#{table}"
            keys = self._query(pk, ProjectionExpression="pk, sk")
            self._write([{"DeleteRequest": {"Key": {"pk": k["pk"], "sk": k["sk"]}}} for k in keys])
