"""The imports point one way, bottom to top: the core, the parts, the stages index and the CLI, the DAGs. Every
import counts, those inside functions too."""

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
# top-level package -> its floor; a module may import its own floor and those below
FLOORS = {"edgerec": 0, "spark_jobs": 1, "training": 1, "deploy": 1, "pipeline": 2, "dags": 3}
CORE = ("edgerec.config", "edgerec.errors", "edgerec.redact", "edgerec.registry", "edgerec.features",
        "edgerec.contracts")
# parts of one floor that must not import each other, and why
APART = {
    ("deploy", "training"): "deploying and promoting must not load PyTorch",
    ("deploy", "spark_jobs"): "deploying needs no Spark",
    ("training", "deploy"): "training ships nothing",
    ("training", "spark_jobs"): "training reads the marts, not Spark",
    ("spark_jobs", "training"): "the warehouse does not depend on the models",
    ("spark_jobs", "deploy"): "the warehouse does not depend on deploying",
}


def imports_of(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.split(".")[0] in FLOORS}


def modules() -> dict[str, set[str]]:
    out = {}
    for package in FLOORS:
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            out[name] = imports_of(path)
    return out


def violations(graph: dict[str, set[str]]) -> list[str]:
    found = []
    for module, imported in sorted(graph.items()):
        top = module.split(".")[0]
        for target in sorted(imported):
            other = target.split(".")[0]
            if FLOORS[other] > FLOORS[top]:
                found.append(f"{module} -> {target}: up from floor {FLOORS[top]} to {FLOORS[other]}")
            elif (top, other) in APART:
                found.append(f"{module} -> {target}: {APART[top, other]}")
            elif module.startswith(CORE) and other == "edgerec" and not target.startswith(CORE):
                found.append(f"{module} -> {target}: the core imports no part")
            elif module.startswith("edgerec.edge") and module != "edgerec.edge.replay" and \
                    target.startswith("edgerec.sim"):
                found.append(f"{module} -> {target}: the device runtime does not depend on the simulator")
    return found


def test_no_import_points_up_or_across_a_separation():
    assert violations(modules()) == []


def test_the_check_finds_an_import_that_points_up():
    graph = {"edgerec.features": {"training.models"}, "deploy.push": {"training.checkpoints"},
             "edgerec.contracts.bundle": {"edgerec.sim.world"}, "edgerec.edge.runtime": {"edgerec.sim.policy"},
             "training.pipeline": {"edgerec.config", "edgerec.sim.world"}, "dags.daily": {"pipeline.stages"}}
    assert violations(graph) == [
        "deploy.push -> training.checkpoints: deploying and promoting must not load PyTorch",
        "edgerec.contracts.bundle -> edgerec.sim.world: the core imports no part",
        "edgerec.edge.runtime -> edgerec.sim.policy: the device runtime does not depend on the simulator",
        "edgerec.features -> training.models: up from floor 0 to 1",
    ]
