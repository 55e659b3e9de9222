"""``python -m kmeans_xp.check``: the self-check (see :func:`kmeans_xp.show_config`).

Exit status 0 when every check passed, 1 otherwise; ``--no-run`` prints the configuration
without running the kernel sets.
"""

from __future__ import annotations

import sys


def main(argv: list | None = None) -> int:
    from ._check import show_config

    args = sys.argv[1:] if argv is None else argv
    return 0 if show_config(run="--no-run" not in args) else 1


if __name__ == "__main__":
    sys.exit(main())
