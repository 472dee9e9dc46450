"""Model-based testing: observations, suites, generators, adapters, mutants, a monitor.

This layer sits on :mod:`fsm.analysis` and :mod:`fsm.model` and turns the
composed system into tests of a real client:

* :mod:`~fsm.testing.observation`: what a test can read from a client and server
  (:class:`Observation`), projected from a composed-system state;
* :mod:`~fsm.testing.suite`: the JSON suite format (:class:`Suite`);
* :mod:`~fsm.testing.generators`: suites by criterion (rows, transitions with a
  provably minimal number of steps, pairs, violations, random walks);
* :mod:`~fsm.testing.adapters`: the :class:`SystemUnderTest` protocol and two
  built-in adapters (the model itself, and the ``transitions`` machines);
* :mod:`~fsm.testing.replay`: run a suite through an adapter, report the first
  divergence of each failing case;
* :mod:`~fsm.testing.mutants`: named mutants of a design's tables, and the kill matrix;
* :mod:`~fsm.testing.monitor`: the runtime :class:`Monitor`;
* :mod:`~fsm.testing.pytest_writer`: a suite as a pytest module that carries it as
  data and runs the user's ``fsm_adapter`` fixture
  (:mod:`~fsm.testing.pytest_plugin`: where that fixture comes from, and the
  ``--fsm-adapter`` option);
* :mod:`~fsm.testing.stateful` (needs ``hypothesis``): a ``RuleBasedStateMachine``
  base class for stateful conformance tests.
"""
