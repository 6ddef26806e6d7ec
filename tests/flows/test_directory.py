"""The grid directory: routing by point and by address, workers, and bad files."""

from __future__ import annotations

import pytest

from flows import DirectoryError, GridDirectory
from tests.flows.conftest import SAMPLE_DIRECTORY


@pytest.fixture(scope="module")
def directory() -> GridDirectory:
    return GridDirectory.load(SAMPLE_DIRECTORY)


SMALL = """\
district: {code: "D1", name: 示例区}
streets:
  - code: S1
    name: 青枫街道
    communities:
      - code: C1
        name: 金桥社区
        grids:
          - code: G1
            name: 金桥社区第一网格
            aliases: [金桥小区]
            workers:
              - {wecom_user_id: ZhangWei, name: 张伟, phone: "13800000001"}
            polygon: [[106.620, 29.710], [106.625, 29.710], [106.625, 29.714], [106.620, 29.714]]
"""


def test_the_sample_is_a_realistic_district(directory: GridDirectory) -> None:
    grids = directory.grids
    assert len(grids) == 12
    assert len({g.street_code for g in grids}) == 3 and len({g.community_code for g in grids}) == 6
    assert all(1 <= len(g.workers) <= 3 for g in grids)
    assert {g.district for g in grids} == {"示例区"}


@pytest.mark.parametrize(
    ("lat", "lon", "grid"),
    [
        (29.7120, 106.6220, "500199001001-01"),  # 金桥社区第一网格, south-west corner of the district
        (29.7160, 106.6220, "500199001001-02"),
        (29.7120, 106.6370, "500199002002-01"),
        (29.7200, 106.6380, "500199003002-02"),
    ],
)
def test_a_location_finds_the_grid_containing_it(directory: GridDirectory, lat: float, lon: float, grid: str) -> None:
    found = directory.route_point(lat, lon)
    assert found is not None and found.code == grid


def test_the_sample_grids_tile_the_area(directory: GridDirectory) -> None:
    # every point of a fine lattice over the area lies in exactly one grid (borders aside)
    misses = [
        (lat, lon)
        for lat in (29.7101 + i * 0.0005 for i in range(23))
        for lon in (106.6201 + j * 0.0005 for j in range(39))
        if directory.route_point(lat, lon) is None
    ]
    assert misses == []


def test_a_location_outside_every_grid_finds_nothing(directory: GridDirectory) -> None:
    assert directory.route_point(29.60, 106.50) is None


def test_a_point_on_a_shared_border_gets_one_grid(directory: GridDirectory) -> None:
    grid = directory.grid("500199001001-01")
    assert grid is not None
    neighbour = directory.grid("500199001002-01")
    lon, lat = grid.polygon[1]  # a corner shared with its eastern neighbour
    assert neighbour is not None and neighbour.polygon[0] == (lon, lat)
    found = directory.route_point(lat, lon)
    assert found is not None and found.code == "500199001001-01"  # the lower code wins


@pytest.mark.parametrize(
    ("text", "grid"),
    [
        ("龙湖花园3栋楼下有人半夜装修", "500199001001-02"),
        ("龙湖花园二期北门", "500199001001-02"),
        ("我住 翠湖家园 5 单元", "500199001002-02"),
        ("云岭新城B区垃圾站", "500199002001-02"),
        ("金桥社区第一网格", "500199001001-01"),
    ],
)
def test_an_address_finds_the_grid_by_compound_or_building(directory: GridDirectory, text: str, grid: str) -> None:
    found = directory.route_address(text)
    assert found is not None and found.code == grid


@pytest.mark.parametrize("text", ["金桥社区门口", "松林村这边", "楼下一直有人吵", ""])
def test_an_address_that_names_no_single_grid_finds_nothing(directory: GridDirectory, text: str) -> None:
    assert directory.route_address(text) is None


def test_a_community_with_one_grid_is_enough() -> None:
    directory = GridDirectory.from_text(SMALL, "small.yaml")
    found = directory.route_address("金桥社区菜市场旁边")
    assert found is not None and found.code == "G1"


def test_place_names_feed_the_nlu(directory: GridDirectory) -> None:
    names = directory.place_names()
    assert {"示例区", "青枫街道", "金桥社区", "金桥社区第一网格", "龙湖花园", "松林村"} <= set(names)
    assert list(names) == sorted(set(names))


def test_a_worker_and_their_grid(directory: GridDirectory) -> None:
    post = directory.post("LiuYang01")
    assert post is not None
    grid = directory.grid(post.code)
    assert grid is not None
    assert (post.person.name, post.person.phone, post.level, grid.code, grid.community, grid.street) == (
        "刘洋", "13800010000", "grid", "500199001001-02", "金桥社区", "青枫街道"
    )
    assert post.holds("grid", grid.code) and not post.holds("street", grid.code)
    assert not post.holds("grid", "500199001001-01")  # the grid next door
    assert directory.post("nobody") is None


def test_the_staff_for_a_grids_ticket_at_each_level(directory: GridDirectory) -> None:
    def names(level: str, grid: str | None) -> list[str]:
        return [w.name for w in directory.staff(level, grid)]

    jinqiao = "500199001001-01"  # 金桥社区, 青枫街道
    assert names("community", jinqiao) == ["唐明"]
    assert names("street", jinqiao) == ["韩波", "冯雪"]
    assert names("district", jinqiao) == names("district", None) == ["秦海", "杜丽"]
    assert names("community", "500199001002-01") == []  # 松林社区 lists none
    assert names("street", "500199003002-02") == ["彭宇", "蒋娜"]  # 临江街道
    assert names("grid", jinqiao) == [] and names("street", None) == [] and names("street", "nope") == []
    [district, street, *_] = directory.areas()
    assert (district.level, district.name, street.level, street.name) == ("district", "示例区", "street", "青枫街道")
    assert street.staff[1].role == "街道综合行政执法大队队长" and street.staff[1].phone == "13800910001"

def test_staff_work_their_areas_tickets_at_their_level(directory: GridDirectory) -> None:
    jinqiao, songlin, linjiang = "500199001001-01", "500199001002-01", "500199003002-02"
    street = directory.post("HanBo91")  # 青枫街道: 金桥社区 and 松林社区
    assert street is not None and (street.level, street.name, street.person.name) == ("street", "青枫街道", "韩波")
    assert street.holds("street", jinqiao) and street.holds("street", songlin)
    assert not street.holds("street", linjiang) and not street.holds("grid", jinqiao)
    assert not street.holds("district", jinqiao) and not street.holds("street", None)
    community = directory.post("TangMing94")  # 金桥社区
    assert community is not None and community.holds("community", jinqiao)
    assert not community.holds("community", songlin) and not community.holds("street", jinqiao)
    district = directory.post("QinHai90")
    assert district is not None and district.holds("district", linjiang) and district.holds("district", None)
    assert not district.holds("street", linjiang)


def test_staff_are_optional_and_read_at_every_level() -> None:
    assert all(a.staff == () for a in GridDirectory.from_text(SMALL, "small.yaml").areas())
    staffed = SMALL.replace('district: {code: "D1", name: 示例区}', """\
district:
  code: "D1"
  name: 示例区
  staff: [{wecom_user_id: QuYan, name: 曲艳, phone: "13800000009", role: 主任}]""")
    staffed = staffed.replace("    name: 青枫街道\n", """\
    name: 青枫街道
    staff: [{wecom_user_id: LuFei, name: 陆飞, phone: "13800000008"}]
""").replace("        name: 金桥社区\n", """\
        name: 金桥社区
        staff: [{wecom_user_id: HeJing, name: 何静, phone: "13800000007"}]
""")
    directory = GridDirectory.from_text(staffed, "staffed.yaml")
    assert [(a.level, [w.wecom_user_id for w in a.staff]) for a in directory.areas()] == [
        ("district", ["QuYan"]), ("street", ["LuFei"]), ("community", ["HeJing"])
    ]
    assert [w.name for w in directory.staff("community", "G1")] == ["何静"]
    assert directory.staff("district", "G1")[0].role == "主任" and directory.staff("street", "G1")[0].role == ""


def test_a_wecom_id_listed_twice_among_workers_and_staff_is_refused() -> None:
    doubled = SMALL.replace("    name: 青枫街道\n", """\
    name: 青枫街道
    staff:
      - {wecom_user_id: LuFei, name: 陆飞, phone: "13800000008"}
      - {wecom_user_id: ZhangWei, name: 张伟, phone: "13800000001"}
""").replace("        name: 金桥社区\n", """\
        name: 金桥社区
        staff: [{wecom_user_id: LuFei, name: 陆飞, phone: "13800000008"}]
""")
    with pytest.raises(DirectoryError) as refused:
        GridDirectory.from_text(doubled, "grids.yaml")
    assert sorted(str(p) for p in refused.value.problems) == [
        "grids.yaml:11:33: error: staff member LuFei is listed in street S1 and community C1; keep one",
        "grids.yaml:17:33: error: worker ZhangWei is listed in street S1 and grid G1; keep one",
    ]


def test_a_bad_staff_entry_is_located() -> None:
    broken = SMALL.replace("    name: 青枫街道\n", """\
    name: 青枫街道
    staff:
      - {wecom_user_id: LuFei, name: 陆飞, phone: "电话待定"}
      - {wecom_user_id: HeJing, name: 何静, phone: "13800000007", title: 主任}
""")
    with pytest.raises(DirectoryError) as refused:
        GridDirectory.from_text(broken, "grids.yaml")
    messages = [str(p) for p in refused.value.problems]
    assert len(messages) == 2
    assert messages[0].startswith("grids.yaml:6:") and "staff[0].phone: '电话待定' does not match" in messages[0]
    assert messages[1].startswith("grids.yaml:7:") and "('title' was unexpected)" in messages[1]


def test_unit_and_area_names(directory: GridDirectory) -> None:
    assert directory.unit_name("500199002") == "云岭街道"
    assert directory.unit_name("500199001001-02") == "金桥社区第二网格"
    assert directory.area_name("500199001001-02", "community") == "金桥社区"
    assert directory.area_name("500199001001-02", "district") == "示例区"
    assert directory.unit_name("street_centre") is None


def test_a_self_intersecting_polygon_names_the_grid_and_the_file() -> None:
    bowtie = SMALL.replace(
        "[[106.620, 29.710], [106.625, 29.710], [106.625, 29.714], [106.620, 29.714]]",
        "[[106.620, 29.710], [106.625, 29.714], [106.625, 29.710], [106.620, 29.714]]",
    )
    with pytest.raises(DirectoryError) as refused:
        GridDirectory.from_text(bowtie, "grids.yaml")
    [problem] = refused.value.problems
    assert str(problem).startswith("grids.yaml:14:")
    assert "grid G1 (金桥社区第一网格): invalid polygon: Self-intersection" in problem.message


def test_swapped_coordinates_are_explained() -> None:
    swapped = SMALL.replace("[106.620, 29.710], [106.625", "[29.710, 106.620], [106.625")
    with pytest.raises(DirectoryError, match=r"looks like \[lat, lon\]"):
        GridDirectory.from_text(swapped, "grids.yaml")


def test_too_few_points() -> None:
    thin = SMALL.replace(", [106.625, 29.714], [106.620, 29.714]]", "]")
    with pytest.raises(DirectoryError, match="polygon"):
        GridDirectory.from_text(thin, "grids.yaml")


def test_wrong_types_and_missing_keys_are_located() -> None:
    broken = SMALL.replace('phone: "13800000001"', "phone: 13800000001")
    broken = broken.replace("            name: 金桥社区第一网格\n", "")
    with pytest.raises(DirectoryError) as refused:
        GridDirectory.from_text(broken, "grids.yaml")
    messages = [str(p) for p in refused.value.problems]
    assert any("13800000001 is not of type 'string'" in m and m.startswith("grids.yaml:12:") for m in messages)
    assert any("'name' is a required property" in m for m in messages)


def test_duplicates_across_grids_are_refused() -> None:
    second = SMALL + """\
      - code: C2
        name: 松林社区
        grids:
          - code: C1
            name: 松林社区第一网格
            aliases: [金桥小区]
            workers:
              - {wecom_user_id: ZhangWei, name: 张伟, phone: "13800000001"}
            polygon: [[106.625, 29.710], [106.630, 29.710], [106.630, 29.714], [106.625, 29.714]]
"""
    with pytest.raises(DirectoryError) as refused:
        GridDirectory.from_text(second, "grids.yaml")
    messages = " | ".join(p.message for p in refused.value.problems)
    assert "duplicate code 'C1' (first on line 6)" in messages  # a grid may not reuse a community's code
    assert "worker ZhangWei is listed in grids G1 and C1" in messages
    assert "alias '金桥小区' names grids G1 and C1" in messages


def test_overlapping_grids_are_refused() -> None:
    overlapping = SMALL + """\
      - code: C2
        name: 松林社区
        grids:
          - code: G2
            name: 松林社区第一网格
            workers:
              - {wecom_user_id: LiNa, name: 李娜, phone: "13800000002"}
            polygon: [[106.622, 29.710], [106.630, 29.710], [106.630, 29.714], [106.622, 29.714]]
"""
    with pytest.raises(DirectoryError, match=r"grid G2 .* overlaps grid G1"):
        GridDirectory.from_text(overlapping, "grids.yaml")


def test_yaml_errors_and_duplicate_keys_are_located() -> None:
    with pytest.raises(DirectoryError, match=r"grids\.yaml:2:\d+: error: duplicate key 'district'"):
        GridDirectory.from_text('district: {code: "D1", name: x}\ndistrict: {}\nstreets: []\n', "grids.yaml")


def test_a_missing_file(tmp_path) -> None:
    with pytest.raises(DirectoryError, match="cannot read"):
        GridDirectory.load(tmp_path / "none.yaml")
