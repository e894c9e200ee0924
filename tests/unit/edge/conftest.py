import pytest

from tests.bundles import make_bundle


@pytest.fixture(scope="session")
def bundle(tmp_path_factory):
    root = tmp_path_factory.mktemp("bundles") / "v20261104-0000beef"
    make_bundle(root)
    return root
