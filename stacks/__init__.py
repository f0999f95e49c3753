"""The programs a stack runs, composed from ``components``: ``regional`` for a tier's stack
(``stackRole: regional``), its concerns in ``data``, ``compute``, ``serving``, ``monitoring``
and ``exports``; ``global_stack`` for tier 4's global stack; ``references`` for everything a
stack reads from another by StackReference. ``__main__.py`` picks the program by role."""
