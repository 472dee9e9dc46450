"""Rendering: the model and the checker's typed results as diagrams, text and a review.

Views build one neutral graph (:mod:`fsm.render.graph`) and writers serialise it:

* :mod:`fsm.render.style`: colours, fonts, legends, text helpers;
* :mod:`fsm.render.graph`: nodes, edges, clusters with roles and structured labels;
* :mod:`fsm.render.dot`, :mod:`fsm.render.mermaid`: the writers;
* :mod:`fsm.render.machine`, :mod:`fsm.render.counterexample`,
  :mod:`fsm.render.diff`, :mod:`fsm.render.composed`: the views;
* :mod:`fsm.render.catalog`: which diagrams exist for a list of designs, and where;
* :mod:`fsm.render.sources`: the diagrams' text sources and the ``--check`` comparison;
* :mod:`fsm.render.graphviz`: Graphviz's ``dot``, run on every source;
* :mod:`fsm.render.text`: plain-text tables shared by the command line and the review;
* :mod:`fsm.render.review`: the design review, one document written as Markdown and HTML.

Files are written through :mod:`fsm.staging`. Nothing here imports :mod:`fsm.cli`.
"""
