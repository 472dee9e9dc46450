"""Collection rule for pytest's doctests of this package.

The reference client and server need the ``reference`` extra (aiohttp); without
it their modules are not collected, and ``tests/test_reference*.py`` skip
themselves saying why.
"""

import importlib.util

collect_ignore_glob = [] if importlib.util.find_spec("aiohttp") else ["*.py"]
