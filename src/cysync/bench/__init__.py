"""cysync-bench: what each cysync primitive costs, in C, in pure Python and in
the standard library, measured side by side in one run.

Run ``cysync-bench --help`` (or ``python -m cysync.bench --help``). The
scenarios live in ``cysync.bench.scenarios``, the measuring machinery in
``cysync.bench.runner`` and the tables in ``cysync.bench.report``.
"""
