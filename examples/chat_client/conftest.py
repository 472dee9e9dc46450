"""Where the generated suite module gets its system under test: the ``fsm_adapter``
fixture. ``pytest`` here tests the client as shipped (with its bug);
``pytest --fixed`` tests the fixed one."""

from __future__ import annotations

import pytest
from chat_adapter import ExampleClientAdapter, FixedExampleClientAdapter

from fsm.testing.adapters import SystemUnderTest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--fixed", action="store_true", help="test the fixed example client")


@pytest.fixture
def fsm_adapter(request: pytest.FixtureRequest) -> SystemUnderTest:
    if request.config.getoption("--fixed"):
        return FixedExampleClientAdapter()
    return ExampleClientAdapter()
