"""The paper's continual experiment from a checkout: ``python benchmarks/paper/continual.py [options]``.

Same as ``kanarray reproduce continual [options]`` (see ``kanarray.reproduce.continual`` and
``kanarray reproduce --help``); writes continual.md and continual.png into --out and prints the table.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from kanarray.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["reproduce", "continual", *sys.argv[1:]]))
