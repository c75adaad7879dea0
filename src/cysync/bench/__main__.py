"""``python -m cysync.bench``: the same as the ``cysync-bench`` command."""

from .cli import main

raise SystemExit(main())
