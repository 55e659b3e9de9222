"""``python -m bench`` (CPU, see bench/run.py); ``python -m bench --gpu [...]`` runs the GPU
benchmark of bench/gpu.py with the remaining arguments."""

import sys

if "--gpu" in sys.argv[1:]:
    from .gpu import main

    sys.argv.remove("--gpu")
else:
    from .run import main

raise SystemExit(main())
