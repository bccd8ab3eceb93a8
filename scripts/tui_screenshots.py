"""Regenerate the README's screenshots of `certbound tui` (docs/tui-clients.svg, docs/tui-add-form.svg).

    .venv/bin/python scripts/tui_screenshots.py

They are drawn by Textual (App.export_screenshot) at 80x24 from the fixed demo database the
snapshot tests use (tests/tui_kit.py), so they change only when the screens do.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.tui_kit import DEMO_IDS, demo_app, open_form, seed_demo, wait_for_list  # noqa: E402

SIZE = (80, 24)


async def screenshots(database: Path) -> dict[str, str]:
    app = demo_app(database)
    shots: dict[str, str] = {}
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_list(pilot, app, DEMO_IDS)
        shots["tui-clients.svg"] = app.export_screenshot(title="certbound tui")
        await open_form(pilot, app, "a")
        await pilot.pause()
        shots["tui-add-form.svg"] = app.export_screenshot(title="certbound tui")
    return shots


def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        database = Path(directory) / "demo.db"
        seed_demo(database)
        shots = asyncio.run(screenshots(database))
    for name, svg in shots.items():
        path = ROOT / "docs" / name
        path.parent.mkdir(exist_ok=True)
        path.write_text(svg, encoding="utf-8")
        print(path.relative_to(ROOT))


if __name__ == "__main__":
    main()
