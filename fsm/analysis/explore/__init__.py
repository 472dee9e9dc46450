"""Exhaustive breadth-first exploration of the composed system.

The explorer visits every reachable world of :class:`~fsm.analysis.system.System`
once, up to a permutation of the messages (they are interchangeable, so
sorting them is a sound symmetry reduction). States are numbered in
breadth-first order, so the first violating state found is one at the least
depth, and the path of parents to it is a shortest counterexample. Paths are
replayed on concrete, unsorted worlds (:meth:`Exploration.trace_to`), so a
message keeps its index along the whole trace: message 0 is the first one the
user sent.

The package is in layers, each importing only those below it:

* :mod:`~fsm.analysis.explore.search`: the batched numpy search (:func:`explore`);
* :mod:`~fsm.analysis.explore.learn`: the memo tables it learns from the system;
* :mod:`~fsm.analysis.explore.graph`: the reachable graph (:class:`Exploration`)
  and the questions asked of it; :mod:`~fsm.analysis.explore.touches`: what an
  action touches, which decides the memo a step may use;
* :mod:`~fsm.analysis.explore.codec`: the integer encoding of states, labels
  and step ranks.
"""

from fsm.analysis.explore.codec import Label
from fsm.analysis.explore.graph import USER_STIMULI, Exploration, Scope, Step
from fsm.analysis.explore.search import PROGRESS_AFTER, explore

__all__ = ["PROGRESS_AFTER", "USER_STIMULI", "Exploration", "Label", "Scope", "Step", "explore"]
