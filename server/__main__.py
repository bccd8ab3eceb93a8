"""`python -m certbound` is `certbound`."""

from __future__ import annotations

from certbound.cli import main

raise SystemExit(main())
