"""``python -m fairrobust.cli``: the ``fairrobust`` command."""

from fairrobust.cli import main

raise SystemExit(main())
