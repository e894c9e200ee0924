"""The Terraform of the cloud side, checked without Terraform: every file parses (python-hcl2), modules follow
the layout, variables and outputs are typed and described, the names agree with the deploy code, and checkov
finds nothing (a skip only with its reason)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import hcl2
import pytest

from deploy.cdn import CHANNELS, IMMUTABLE, LOCKS, MODELS, SHORT
from deploy.kv.dynamodb import PARTITION_KEY, SORT_KEY, TTL_ATTRIBUTE
from edgerec.config import REPO_ROOT

pytestmark = pytest.mark.unit
TERRAFORM = REPO_ROOT / "terraform"
MODULES = sorted(p for p in (TERRAFORM / "modules").iterdir() if p.is_dir())
ROOTS = [TERRAFORM / "live"]  # one root; what differs per environment is in its envs/*.tfvars


def unquote(value):
    """python-hcl2 keeps the quotes of strings and labels, and marks blocks: plain values for the tests."""
    if isinstance(value, dict):
        return {unquote(k): unquote(v) for k, v in value.items() if k != "__is_block__"}
    if isinstance(value, list):
        return [unquote(v) for v in value]
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def parse(folder: Path) -> dict[str, list]:
    """Every top-level block of a folder's .tf files, by kind."""
    blocks: dict[str, list] = {}
    for path in sorted(folder.glob("*.tf")):
        with open(path) as f:
            for kind, items in unquote(hcl2.load(f)).items():
                blocks.setdefault(kind, []).extend(items)
    return blocks


def resources(folder: Path, kind: str) -> dict[str, dict]:
    return {name: body for block in parse(folder).get("resource", []) for k, named in block.items() if k == kind
            for name, body in named.items()}


def policy_statements(folder: Path, document: str) -> list[dict]:
    docs = {n: b for block in parse(folder).get("data", []) for k, named in block.items()
            if k == "aws_iam_policy_document" for n, b in named.items()}
    return docs[document]["statement"]


def layout_problems(folder: Path) -> list[str]:
    """What a module or root lacks: the standard files, types and descriptions of variables and outputs."""
    problems = [f"{folder.name} lacks {name}" for name in ("main.tf", "variables.tf", "outputs.tf", "versions.tf")
                if not (folder / name).is_file()]
    blocks = parse(folder)
    if not blocks.get("terraform"):
        problems.append(f"{folder.name} declares no terraform block")
    for block in blocks.get("variable", []):
        for name, body in block.items():
            if not body.get("type"):
                problems.append(f"{folder.name}: variable {name} has no type")
            if len(body.get("description", "")) <= 10:
                problems.append(f"{folder.name}: variable {name} has no description")
    for block in blocks.get("output", []):
        for name, body in block.items():
            if len(body.get("description", "")) <= 10:
                problems.append(f"{folder.name}: output {name} has no description")
    return problems


@pytest.mark.parametrize("folder", MODULES + ROOTS, ids=lambda p: p.relative_to(TERRAFORM).as_posix())
def test_every_module_and_root_has_the_standard_files_typed_variables_and_described_outputs(folder):
    assert layout_problems(folder) == []


def test_layout_problems_are_named(tmp_path):
    (tmp_path / "main.tf").write_text('resource "aws_sqs_queue" "q" {\n  name = "q"\n}\n')
    (tmp_path / "variables.tf").write_text('variable "a" {\n  description = "an untyped variable"\n}\n'
                                           'variable "b" {\n  type = string\n}\n')
    (tmp_path / "outputs.tf").write_text('output "o" {\n  value = 1\n}\n')
    name = tmp_path.name
    assert layout_problems(tmp_path) == [f"{name} lacks versions.tf", f"{name} declares no terraform block",
                                         f"{name}: variable a has no type", f"{name}: variable b has no description",
                                         f"{name}: output o has no description"]


def test_the_root_keeps_remote_state_and_passes_every_stack_variable():
    stack = {n for b in parse(TERRAFORM / "modules" / "stack")["variable"] for n in b}
    for root in ROOTS:
        blocks = parse(root)
        assert any("backend" in t for t in blocks["terraform"]), f"{root.name}: no remote state backend"
        call = blocks["module"][0]["edgerec"]
        assert call["source"] == "../modules/stack"
        assert set(call) - {"source"} == stack, f"{root.name} does not pass every stack variable"


def settings_of(path: Path) -> dict:
    """The assignments of a .tfvars or .hcl file, without python-hcl2's comment entries."""
    return {k: v for k, v in unquote(hcl2.loads(path.read_text())).items() if not k.startswith("__")}


def test_each_environment_is_a_variable_file_and_a_backend_file_of_the_one_root():
    root = TERRAFORM / "live"
    declared = {n for b in parse(root)["variable"] for n in b}
    required = {n for b in parse(root)["variable"] for n, body in b.items() if "default" not in body}
    for env in ("dev", "prod"):
        values = settings_of(root / "envs" / f"{env}.tfvars.example")
        assert values["environment"] == env
        assert set(values) <= declared and required <= set(values), f"{env}: unknown or missing variables"
        backend = settings_of(root / "envs" / f"{env}.backend.hcl.example")
        assert backend["key"] == f"edgerec/{env}/terraform.tfstate" and backend["use_lockfile"] is True
    assert not (TERRAFORM / "envs").exists()  # no copies of the root per environment


def test_the_table_has_the_keys_and_ttl_the_deploy_code_writes():
    table = resources(TERRAFORM / "modules" / "kv", "aws_dynamodb_table")["embeddings"]
    assert (table["hash_key"], table["range_key"]) == (PARTITION_KEY, SORT_KEY)
    assert {a["name"]: a["type"] for a in table["attribute"]} == {PARTITION_KEY: "S", SORT_KEY: "S"}
    assert table["ttl"][0] == {"attribute_name": TTL_ATTRIBUTE, "enabled": True}
    assert table["billing_mode"] == "PAY_PER_REQUEST" and table["point_in_time_recovery"][0]["enabled"] is True


def test_cdn_caches_models_for_long_and_channels_briefly_as_the_objects_say():
    cdn = TERRAFORM / "modules" / "cdn"
    behaviours = resources(cdn, "aws_cloudfront_distribution")["bundles"]["ordered_cache_behavior"]
    by_path = {b["path_pattern"]: b["cache_policy_id"] for b in behaviours}
    assert set(by_path) == {f"{MODELS}/*", f"{CHANNELS}/*"}
    assert by_path[f"{MODELS}/*"].endswith("cache_policy.models.id}")
    defaults = {n: b.get("default") for blk in parse(cdn)["variable"] for n, b in blk.items()}
    assert defaults["models_ttl_seconds"] == int(re.search(r"max-age=(\d+)", IMMUTABLE).group(1))
    assert defaults["channels_ttl_seconds"] == int(re.search(r"max-age=(\d+)", SHORT).group(1))
    bucket = resources(cdn, "aws_s3_bucket_public_access_block")["bundles"]
    assert all(bucket[k] is True for k in ("block_public_acls", "block_public_policy", "ignore_public_acls",
                                           "restrict_public_buckets"))


def writes(statements: list[dict]) -> set[str]:
    """The S3 resources a policy may put objects into."""
    return {r for s in statements if "s3:PutObject" in s["actions"] for r in s["resources"]}


def test_roles_write_only_their_part_of_the_bucket():
    iam = TERRAFORM / "modules" / "iam"
    prefixes = {name: value for block in parse(iam)["locals"] for name, value in block.items()}
    assert prefixes["models"].endswith(f"/{MODELS}/*") and prefixes["channels"].endswith(f"/{CHANNELS}/*")
    assert prefixes["locks"].endswith(f"/{LOCKS}/*")
    assert writes(policy_statements(iam, "deploy")) == {"${local.models}", "${local.locks}"}
    assert writes(policy_statements(iam, "release")) == {"${local.channels}", "${local.locks}"}
    assert writes(policy_statements(iam, "serving")) == set()
    ci = policy_statements(iam, "ci")
    assert writes(ci) == {"${var.state_bucket_arn}/*.tflock"}  # plan only: its lock file in the state bucket
    assert not any(a.startswith("dynamodb:") and not a.startswith(("dynamodb:Describe", "dynamodb:List"))
                   for s in ci for a in s["actions"])


def test_the_stack_outputs_the_settings_the_deploy_stage_reads():
    outputs = {n: b for blk in parse(TERRAFORM / "modules" / "stack")["output"] for n, b in blk.items()}
    env = outputs["edgerec_env"]["value"]
    assert set(env) == {"EDGEREC_CDN_URL", "EDGEREC_KV_URL", "EDGEREC_MLFLOW_TRACKING_URI"}
    assert env["EDGEREC_CDN_URL"].startswith("s3://${module.cdn.bucket}")
    assert "dynamodb://${module.kv.table_name}" in env["EDGEREC_KV_URL"]
    assert "rediss://${module.kv.redis_endpoint}:6379" in env["EDGEREC_KV_URL"]


def checkov() -> str:
    found = os.environ.get("CHECKOV") or str(Path(sys.executable).parent.parent / "tools" / "checkov" / "bin" /
                                             "checkov")
    if not Path(found).is_file():
        pytest.fail(f"checkov is not installed at {found}: run `make setup` (scripts/setup.sh installs it in a venv "
                    f"of its own) or set CHECKOV")
    return found


def checkov_failures(folder: Path) -> tuple[list[str], int]:
    out = subprocess.run([checkov(), "-d", str(folder), "--framework", "terraform", "--skip-download", "--quiet",
                          "-o", "json"], capture_output=True, text=True, timeout=600)
    report = json.loads(out.stdout)
    report = report if isinstance(report, list) else [report]
    failed = [f"{c['check_id']} {c['resource']}" for r in report for c in r["results"]["failed_checks"]]
    return failed, sum(r["summary"]["passed"] for r in report)


def test_checkov_finds_nothing_and_every_skip_says_why():
    failed, passed = checkov_failures(TERRAFORM)
    assert failed == [] and passed > 100, "\n".join(failed)
    for path in TERRAFORM.rglob("*.tf"):
        for skip in re.findall(r"checkov:skip=([^\n]*)", path.read_text()):
            check, _, reason = skip.partition(":")
            assert re.fullmatch(r"CKV2?_AWS_\d+", check) and len(reason.strip()) > 20, f"{path}: skip {skip!r}"


def test_checkov_fails_an_open_bucket(tmp_path):
    (tmp_path / "main.tf").write_text('resource "aws_s3_bucket_public_access_block" "open" {\n'
                                      '  bucket = "b"\n  block_public_acls = false\n}\n')
    failed, _ = checkov_failures(tmp_path)
    assert "CKV_AWS_53 aws_s3_bucket_public_access_block.open" in failed
