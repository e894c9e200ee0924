"""constraints.txt, the lock `make setup` installs through, pins every dependency pyproject.toml names at a version
pyproject.toml allows: a dependency added without `scripts/lock.sh` fails here."""

import tomllib

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from edgerec.config import REPO_ROOT

pytestmark = pytest.mark.unit


def pins(text: str) -> dict[str, Version]:
    found = {}
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            found[canonicalize_name(name)] = Version(version)
    return found


def unlocked(requirements: list[str], locked: dict[str, Version]) -> list[str]:
    """The requirements the lock does not pin, or pins at a version they exclude."""
    wrong = []
    for text in requirements:
        req = Requirement(text)
        version = locked.get(canonicalize_name(req.name))
        if version is None or not req.specifier.contains(version, prereleases=True):
            wrong.append(f"{req} (locked: {version})")
    return wrong


def test_every_dependency_is_locked_at_an_allowed_version():
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    requirements = project["dependencies"] + project["optional-dependencies"]["dev"]
    assert unlocked(requirements, pins((REPO_ROOT / "constraints.txt").read_text())) == []


def test_a_missing_or_excluded_pin_is_named():
    locked = pins("# comment\napache-airflow==3.3.2\ntorch==2.13.0\n")
    assert unlocked(["apache-airflow>=3.3,<3.4", "torch==2.13.0"], locked) == []
    assert unlocked(["apache-airflow>=3.4", "redis>=5"], locked) == [
        "apache-airflow>=3.4 (locked: 3.3.2)", "redis>=5 (locked: None)"]
