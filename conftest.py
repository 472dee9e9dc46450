"""Collection rules for the whole repository.

The reference client and server (``fsm/reference``) need the ``reference`` extra
(aiohttp); without it their modules are not collected for doctests, and
``tests/test_reference*.py`` skip themselves saying why.
"""

import importlib.util

collect_ignore_glob = [] if importlib.util.find_spec("aiohttp") else ["fsm/reference/*"]
