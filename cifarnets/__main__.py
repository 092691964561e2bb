import sys

if sys.argv[1:2] == ["worker"]:
    # A worker idles for hours between runs (each run is a fresh process): it starts without the CLI's modules and
    # torch, 40 MB and a second instead of hundreds and several.
    from .runs.engine import main_worker

    raise SystemExit(main_worker(sys.argv[2:]))

from .cli import main

raise SystemExit(main())
