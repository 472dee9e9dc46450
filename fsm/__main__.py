"""``python -m fsm`` runs the command line."""

from fsm.cli import entry

entry()
