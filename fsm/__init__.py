"""Finite-state models of a chat client's transport resilience.

The connection and message machines are typed tables (:mod:`fsm.model`);
designs select their rows (:mod:`fsm.design`); the composed system
(:mod:`fsm.system`) is explored exhaustively by :mod:`fsm.checker`.
"""

from fsm.checker import PROPERTIES, CheckReport, check, explore
from fsm.design import (
    DESIGNS,
    ENVIRONMENTS,
    Design,
    Environment,
    get_design,
    get_environment,
    load_design,
)
from fsm.errors import (
    DefinitionError,
    ForbiddenTransition,
    FsmError,
    SpecError,
    StateLimitExceeded,
    UnknownName,
)
from fsm.machines import Machine, build_machine
from fsm.model import (
    CONNECTION,
    FORBIDDEN,
    MESSAGE,
    ConnectionEvent,
    ConnectionState,
    ForbiddenRule,
    MessageEvent,
    MessageState,
)
from fsm.system import Stimulus, System

__all__ = [
    "CONNECTION",
    "DESIGNS",
    "ENVIRONMENTS",
    "FORBIDDEN",
    "MESSAGE",
    "PROPERTIES",
    "CheckReport",
    "ConnectionEvent",
    "ConnectionState",
    "DefinitionError",
    "Design",
    "Environment",
    "ForbiddenRule",
    "ForbiddenTransition",
    "FsmError",
    "Machine",
    "MessageEvent",
    "MessageState",
    "SpecError",
    "StateLimitExceeded",
    "Stimulus",
    "System",
    "UnknownName",
    "build_machine",
    "check",
    "explore",
    "get_design",
    "get_environment",
    "load_design",
]

__version__ = "0.1.0"
