"""Finite-state models of a chat client's transport resilience.

A chat client's WebSocket connection and each message it sends are two
machines, each one typed table of rows. A :class:`Design` (a set of named
resilience features) selects its rows; :func:`check` explores the composed
system of one design in one :class:`Environment` exhaustively and judges every
property, with a shortest counterexample for each violation::

    >>> import fsm
    >>> result = fsm.check(fsm.get_design("pre-fix"), fsm.get_environment("ios-suspend"))
    >>> result.verdict("no-silent-loss").holds
    False

Model-based testing: :func:`generate` makes a :class:`Suite` (cases of steps,
each with the :class:`Observation` a test expects) by a coverage criterion;
:func:`replay` runs it through a :class:`SystemUnderTest` (your client's
adapter, or the built-in ``model`` and ``transitions`` ones); :class:`Monitor`
checks a live client's events against a design's tables and forbidden rules::

    >>> suite = fsm.generate(fsm.get_design("hardened"), fsm.get_environment("ios-suspend"),
    ...                      messages=1, criterion="rows")
    >>> fsm.replay(suite, fsm.testing.adapters.TransitionsAdapter()).passed
    True

Entry points: :func:`get_design`, :func:`get_environment`, :func:`load_design`,
:func:`check`, :func:`connection_machine`, :func:`message_machine`,
:func:`generate`, :func:`replay`, :class:`Monitor`. Layers: :mod:`fsm.model`
(tables, effects, designs, forbidden rules), :mod:`fsm.analysis` (composed
system, properties, explorer, checker), :mod:`fsm.testing` (observations,
suites, generators, adapters, mutants, monitor) and :mod:`fsm.render`
(diagrams, review, text), :mod:`fsm.cli`.
"""

from fsm.analysis.checker import CheckResult, Verdict, check
from fsm.analysis.properties import PROPERTIES, Property, get_property
from fsm.analysis.system import Outcome, Stimulus, System, Transition, World
from fsm.analysis.trace import Trace
from fsm.model.design import (
    DESIGNS,
    ENVIRONMENTS,
    Design,
    Environment,
    get_design,
    get_environment,
    load_design,
)
from fsm.model.errors import (
    BadRequest,
    DefinitionError,
    DriverFailure,
    EngineDisagreement,
    EngineError,
    EngineUnavailable,
    ForbiddenTransition,
    FsmError,
    InvalidArgument,
    MonitorError,
    OutputError,
    RenderError,
    SettleTimeout,
    SpecError,
    StateLimitExceeded,
    StepRefused,
    UnknownName,
    UsageError,
)
from fsm.model.forbidden import FORBIDDEN, ForbiddenRule
from fsm.model.machines import Machine, connection_machine, message_machine
from fsm.model.tables import Row
from fsm.model.vocabulary import ConnectionEvent, ConnectionState, MessageEvent, MessageState
from fsm.testing.adapters import SystemUnderTest
from fsm.testing.generators import generate
from fsm.testing.monitor import Monitor
from fsm.testing.observation import Observation
from fsm.testing.replay import replay
from fsm.testing.suite import Suite

__all__ = [
    "DESIGNS",
    "ENVIRONMENTS",
    "FORBIDDEN",
    "PROPERTIES",
    "BadRequest",
    "CheckResult",
    "ConnectionEvent",
    "ConnectionState",
    "DefinitionError",
    "Design",
    "DriverFailure",
    "EngineDisagreement",
    "EngineError",
    "EngineUnavailable",
    "Environment",
    "ForbiddenRule",
    "ForbiddenTransition",
    "FsmError",
    "InvalidArgument",
    "Machine",
    "MessageEvent",
    "MessageState",
    "Monitor",
    "MonitorError",
    "Observation",
    "Outcome",
    "OutputError",
    "Property",
    "RenderError",
    "Row",
    "SettleTimeout",
    "SpecError",
    "StateLimitExceeded",
    "StepRefused",
    "Stimulus",
    "Suite",
    "System",
    "SystemUnderTest",
    "Trace",
    "Transition",
    "UnknownName",
    "UsageError",
    "Verdict",
    "World",
    "check",
    "connection_machine",
    "generate",
    "get_design",
    "get_environment",
    "get_property",
    "load_design",
    "message_machine",
    "replay",
]

__version__ = "0.2.0"
