"""``python -m local_runtime serve``."""

from local_runtime.serve import main

raise SystemExit(main())
