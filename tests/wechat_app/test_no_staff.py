"""A directory that lists no staff (as every directory did before staff existed): the dispatchers
take what is above the grid, and are told each thing once."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows import GridDirectory
from tests.conftest import without_staff
from tests.wechat_app.conftest import DIRECTORY, Service


@pytest.fixture
def wechat_env(wechat_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    bare = tmp_path / "no-staff.yaml"
    bare.write_text(without_staff(DIRECTORY.read_text(encoding="utf-8")), encoding="utf-8")
    assert not any(a.staff for a in GridDirectory.load(bare).areas())
    return {**wechat_env, "GRIDBOT_FLOWS__DIRECTORY": str(bare)}


def _to_dispatcher(service: Service) -> list[str]:
    return [m.content for m in service.fake.sent_to("wecom_app") if m.to == ("Dispatcher01",)]


async def test_a_copy_to_the_dispatcher_and_a_street_unit_without_staff_comes_once(service: Service):
    # 消防安全 is copied to the dispatcher and to the street centre (flows/default.yaml)
    summary = await service.resident("o-fire", "金桥小区楼道里堆满了杂物，消防通道被堵死了，我电话13912345678", 7600)
    assert "确认" in summary, summary
    await service.resident("o-fire", "确认", 7601)
    await service.outbox.run_once()
    copies = [t for t in _to_dispatcher(service) if t.startswith("【抄送】")]
    assert len(copies) == 1 and "消防" in copies[0]
