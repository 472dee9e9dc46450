"""What the review shows, computed once: every design checked in every built-in
environment, the seed scenario replayed, each feature set back, the send question
asked, and the diagrams built."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

from fsm.analysis.ablation import AblationRow, ablate
from fsm.analysis.checker import CheckResult
from fsm.analysis.questions import SendDependence, send_dependence
from fsm.analysis.scenario import ScenarioReport, get_scenario, run
from fsm.model.design import DESIGNS, ENVIRONMENTS, Design, load_design
from fsm.render import catalog
from fsm.render.catalog import Diagram
from fsm.render.composed import Composed

__all__ = ["DEFAULT_OUT", "SCENARIO", "SEND_MESSAGES", "ReviewData", "collect", "review_designs"]

DEFAULT_OUT = "diagrams"
SCENARIO = "seed-verification"
#: The send question is asked with one message: a second send cannot then rescue
#: the first one, so the answer is about that send alone.
SEND_MESSAGES = 1


def review_designs(specs: Sequence[str]) -> list[Design]:
    """The built-in designs, then those of ``specs`` (a spec equal to a built-in is dropped)."""
    designs = list(DESIGNS.values()) + [
        catalog.check_spec(path, load_design(path)) for path in specs
    ]
    catalog.check_names(designs)
    unique: dict[str, Design] = {}
    for d in designs:
        unique.setdefault(d.name, d)
    return list(unique.values())


@dataclass
class ReviewData:
    """Everything the review shows, computed once."""

    designs: list[Design]
    results: dict[tuple[str, str], CheckResult]
    scenarios: dict[tuple[str, str], ScenarioReport]
    #: Each design's reachable one-message graph, explored once for the diagram
    #: and for the counts the review prints.
    composed: dict[str, Composed]
    diagrams: list[Diagram]
    #: (design, baseline) -> each feature set back, for consecutive built-in designs.
    ablations: dict[tuple[str, str], list[AblationRow]] = field(default_factory=dict)
    #: Whether each design keeps a message sent into a suspended socket only because
    #: the send raises (the seed's two readings of its root cause).
    sends: dict[str, SendDependence] = field(default_factory=dict)

    def result(self, design: str, env: str) -> CheckResult:
        return self.results[(design, env)]

    def diagram(self, path: str) -> Diagram | None:
        return next((d for d in self.diagrams if d.path == path), None)


def collect(designs: Sequence[Design]) -> ReviewData:
    """Check, replay the seed scenario and build the diagrams for ``designs``."""
    results = catalog.run_checks(designs)
    graphs = catalog.run_composed(designs)
    scenario = get_scenario(SCENARIO)
    scenarios = {
        (d.name, env): run(scenario, d, ENVIRONMENTS[env]) for d in designs for env in ENVIRONMENTS
    }
    builtins = list(DESIGNS)
    envs = list(ENVIRONMENTS.values())
    ablations = {
        (later, earlier): ablate(DESIGNS[later], DESIGNS[earlier], envs, catalog.MESSAGES)
        for earlier, later in itertools.pairwise(builtins)
    }
    diagrams = catalog.build(designs, results, graphs)
    sends = {d.name: send_dependence(d, SEND_MESSAGES) for d in designs}
    return ReviewData(list(designs), results, scenarios, graphs, diagrams, ablations, sends)
