"""S3 as the CDN origin (CloudFront in front of it in the cloud; terraform/)."""

from __future__ import annotations

from pathlib import Path

import boto3
from boto3.exceptions import Boto3Error
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from deploy.cdn import MAX_S3_ATTEMPTS, CDNError, ObjectStore, cache_control

# large embedding shards go up in parallel 16 MB parts; throttling (503 SlowDown) is retried with backoff
TRANSFER = TransferConfig(multipart_threshold=16 << 20, multipart_chunksize=16 << 20, max_concurrency=4)


class S3Origin(ObjectStore):
    def __init__(self, bucket: str, prefix: str = "", endpoint_url: str | None = None, region: str | None = None,
                 max_attempts: int = MAX_S3_ATTEMPTS):
        self.bucket, self.prefix = bucket, prefix
        self.url = f"s3://{bucket}/{prefix}".rstrip("/")
        retries = Config(retries={"mode": "standard", "max_attempts": max_attempts}, connect_timeout=5, read_timeout=60)
        self.client = boto3.client("s3", endpoint_url=endpoint_url, region_name=region or "us-east-1", config=retries)

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _call(self, what: str, fn, **kwargs):
        try:
            return fn(**kwargs)
        except (BotoCoreError, ClientError, Boto3Error) as e:  # upload_file raises S3UploadFailedError
            raise CDNError(f"{self.url}: {what}: {e}") from e

    def put_file(self, key: str, path: Path, sha256: str) -> None:
        self._call(f"upload {key}", self.client.upload_file, Filename=str(path), Bucket=self.bucket,
                   Key=self._key(key), Config=TRANSFER,
                   ExtraArgs={"CacheControl": cache_control(key), "Metadata": {"sha256": sha256}})

    def put_bytes(self, key: str, data: bytes) -> None:
        self._call(f"put {key}", self.client.put_object, Bucket=self.bucket, Key=self._key(key), Body=data,
                   CacheControl=cache_control(key), ContentType="application/json")

    def create_exclusive(self, key: str, data: bytes) -> bool:
        try:
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, IfNoneMatch="*")
        except ClientError as e:
            if e.response["Error"]["Code"] in ("PreconditionFailed", "ConditionalRequestConflict"):
                return False
            raise CDNError(f"{self.url}: create {key}: {e}") from e
        except BotoCoreError as e:
            raise CDNError(f"{self.url}: create {key}: {e}") from e
        return True

    def _unless_missing(self, what: str, key: str, fn):
        """fn's answer, or None when the object does not exist."""
        try:
            return fn(Bucket=self.bucket, Key=self._key(key))
        except ClientError as e:
            if e.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
                return None
            raise CDNError(f"{self.url}: {what} {key}: {e}") from e
        except BotoCoreError as e:
            raise CDNError(f"{self.url}: {what} {key}: {e}") from e

    def get_bytes(self, key: str) -> bytes | None:
        answer = self._unless_missing("get", key, self.client.get_object)
        return answer["Body"].read() if answer else None

    def recorded_sha256(self, key: str) -> str | None:
        head = self._unless_missing("head", key, self.client.head_object)
        return head.get("Metadata", {}).get("sha256", "unrecorded") if head else None

    def list(self, prefix: str) -> list[str]:
        keys, cut = [], len(self.prefix) + 1 if self.prefix else 0
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key(prefix)):
                keys += [o["Key"][cut:] for o in page.get("Contents", [])]
        except (BotoCoreError, ClientError) as e:
            raise CDNError(f"{self.url}: list {prefix}: {e}") from e
        return sorted(keys)

    def delete(self, keys: list[str]) -> None:
        for lo in range(0, len(keys), 1000):
            objects = [{"Key": self._key(k)} for k in keys[lo:lo + 1000]]
            self._call("delete", self.client.delete_objects, Bucket=self.bucket, Delete={"Objects": objects})
