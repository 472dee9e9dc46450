"""The pytest side of a generated suite module: where its tests get the client from.

Every test of a module written by ``fsm testgen --format pytest`` takes the
module's ``system_under_test`` fixture, which is :func:`adapter_from`: the value
of the ``fsm_adapter`` fixture, which the module does not define. A test run
gets it from

1. an ``fsm_adapter`` fixture of the user's own (in ``conftest.py``), which
   pytest prefers to this one::

       @pytest.fixture
       def fsm_adapter() -> SystemUnderTest:
           return MyClientAdapter()

2. else ``pytest --fsm-adapter mypackage.adapters:MyClientAdapter`` (or a
   built-in adapter's name, such as ``model``): the ``fsm_adapter`` fixture of
   this plugin, which installing ``fsm`` registers with pytest (or
   ``pytest -p fsm.testing.pytest_plugin``).

With neither, every test errors with :data:`NO_ADAPTER`: a generated module
never silently tests the model instead of the client.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fsm.model.errors import FsmError
from fsm.testing.adapters import SystemUnderTest, load_adapter

__all__ = ["NO_ADAPTER", "adapter_from", "fsm_adapter", "pytest_addoption"]

#: What a test run without an adapter says.
NO_ADAPTER = (
    "fsm: no system under test: define a fixture `fsm_adapter` in conftest.py that "
    "returns your SystemUnderTest (see fsm.testing.adapters), or run pytest with "
    "--fsm-adapter module:Class (--fsm-adapter model tests the model itself)"
)


def adapter_from(request: pytest.FixtureRequest) -> SystemUnderTest:
    """The ``fsm_adapter`` fixture's value; a test error saying what to do without one."""
    try:
        adapter = request.getfixturevalue("fsm_adapter")
    except pytest.FixtureLookupError:
        pytest.fail(NO_ADAPTER, pytrace=False)
    if not isinstance(adapter, SystemUnderTest):
        pytest.fail(
            f"fsm: the fsm_adapter fixture returned a {type(adapter).__name__}, which has "
            "no reset() and apply() (see fsm.testing.adapters.SystemUnderTest)",
            pytrace=False,
        )
    return adapter


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("fsm", "fsm generated suites")
    group.addoption(
        "--fsm-adapter",
        dest="fsm_adapter",
        metavar="NAME",
        default=None,
        help="the system under test of generated fsm suite modules: module:Class "
        "(imported from the current folder too) or a built-in adapter's name",
    )


@pytest.fixture(scope="session")
def fsm_adapter(request: pytest.FixtureRequest) -> Iterator[SystemUnderTest]:
    """The adapter ``--fsm-adapter`` names; an error saying what to do without one."""
    spec = request.config.getoption("fsm_adapter", default=None)
    if not spec:
        pytest.fail(NO_ADAPTER, pytrace=False)
    try:
        adapter = load_adapter(str(spec))
    except FsmError as exc:
        pytest.fail(f"fsm: --fsm-adapter {spec}: {exc}", pytrace=False)
    yield adapter
    close = getattr(adapter, "close", None)
    if callable(close):
        close()
