"""`python -m server` is `certbound`."""

from __future__ import annotations

from server.cli import main

raise SystemExit(main())
