"""`gridbot flows apply/history/rollback/migrate` against the real Redis, as an admin runs them."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from bot.app import build_services
from bot.ticketing import ReportDraft
from tests.conftest import TEST_REDIS_URL

ROOT = Path(__file__).resolve().parent.parent
GRIDBOT = ROOT / ".venv" / "bin" / "gridbot"


def gridbot(key_prefix: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GRIDBOT_REDIS__URL": TEST_REDIS_URL, "GRIDBOT_REDIS__KEY_PREFIX": key_prefix}
    return subprocess.run([str(GRIDBOT), *args], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)


async def test_apply_history_rollback_and_migrate(config, clock, nlu, redis, key_prefix, tmp_path):
    services = await build_services(config, clock=clock, nlu=nlu)
    try:
        original = services.flows.flow.version
        old = await services.tickets.open(
            "rest",
            "m1",
            ReportDraft(description="垃圾没人清", category="sanitation", location_text="阳光花园"),
            clock(),
        )
        slower = tmp_path / "slower.yaml"
        slower.write_text(
            config.path(config.flows.file)
            .read_text(encoding="utf-8")
            .replace("    deadline: 1 working day", "    deadline: 3 working days", 1),
            encoding="utf-8",
        )
        applied = gridbot(key_prefix, "flows", "apply", str(slower), "--author", "alice")
        assert applied.returncode == 0, applied.stderr
        new_version = applied.stdout.split("applied version ")[1].split(";")[0]
        assert new_version != original

        history = gridbot(key_prefix, "flows", "history")
        lines = history.stdout.splitlines()
        assert lines[0].startswith(f"* {new_version}") and "alice" in lines[0]
        assert lines[1].startswith(f"  {original}")

        broken = tmp_path / "broken.yaml"
        broken.write_text("colours:\n  red: {deadline: soon}\n", encoding="utf-8")
        refused = gridbot(key_prefix, "flows", "apply", str(broken))
        assert refused.returncode == 1 and "broken.yaml:" in refused.stderr and "refused" in refused.stderr
        assert gridbot(key_prefix, "flows", "history").stdout.splitlines()[0].startswith(f"* {new_version}")

        migrated = gridbot(key_prefix, "flows", "migrate", old.number)
        assert migrated.returncode == 0, migrated.stderr
        moved = await services.tickets.store.get(old.number)
        assert moved.flow.flow_version == new_version
        assert moved.flow.deadline > old.flow.deadline
        assert moved.timeline[-1].kind != "" and any(e.kind == "migrate" for e in moved.timeline)

        back = gridbot(key_prefix, "flows", "rollback", original)
        assert back.returncode == 0, back.stderr
        assert gridbot(key_prefix, "flows", "history").stdout.splitlines()[0].startswith(f"* {original}")
        assert gridbot(key_prefix, "flows", "rollback", "nosuchversion").returncode == 1
    finally:
        await services.close()
