"""The paper's special experiment from a checkout: ``python benchmarks/paper/special.py [options]``.

Same as ``kanarray reproduce special [options]`` (see ``kanarray.reproduce.special`` and
``kanarray reproduce --help``); writes special.md and special.png into --out and prints the table.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from kanarray.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["reproduce", "special", *sys.argv[1:]]))
