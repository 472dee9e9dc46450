"""``python -m fsm`` runs the command line."""

if __name__ == "__main__":
    from fsm.cli import entry

    entry()
