"""``python -m fairrobust``: the ``fairrobust`` command."""

from fairrobust.cli import main

raise SystemExit(main())
