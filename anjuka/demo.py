"""A demo city: areas with different policies, estates with subdivided flats,
residents, and one user of every role (passwords printed once)."""

from __future__ import annotations

import random
import secrets
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

import sqlalchemy as sa

from anjuka.areas.models import Area
from anjuka.areas.operations import create_area
from anjuka.auth.operations import create_user
from anjuka.core.db import db
from anjuka.core.errors import Conflict
from anjuka.core.security import Identity
from anjuka.core.time import local_today
from anjuka.dwellings.models import Dwelling, DwellingStatus, Estate
from anjuka.dwellings.operations import create_dwelling, create_estate
from anjuka.persons.identity import ParsedDocument, parse_document, resident_id_check_char
from anjuka.residences.operations import register_arrival

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗高"
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚桂英"
ORIGINS = ["安徽阜阳", "河南信阳", "江西上饶", "贵州毕节", "四川南充", "湖南邵阳"]
#: Region codes of the demo residents' birthplaces (prefixes of real ID numbers).
REGIONS = ["341202", "411502", "361102", "520502", "511302", "430502"]


def demo_id_number(rng: random.Random) -> str:
    """A syntactically valid resident ID number (check digit per GB 11643)."""
    birth = date(1965, 1, 1) + timedelta(days=rng.randrange(0, 365 * 40))
    first17 = f"{rng.choice(REGIONS)}{birth:%Y%m%d}{rng.randrange(0, 1000):03d}"
    return first17 + resident_id_check_char(first17)


@dataclass
class DemoCity:
    """What the demo loaded: the counts, the estates, and each user's password (shown once)."""

    dwellings: int
    residents: int
    estates: list[int]
    passwords: dict[str, str] = field(default_factory=dict)


def load_demo(seed: int = 20261129) -> DemoCity:
    """Populate an empty registry (in the caller's transaction); refuse to run twice."""
    if db.session.scalar(sa.select(sa.func.count()).select_from(Area)):
        raise Conflict(
            "The registry already has areas: the demo loads only once.", code="not_empty"
        )
    rng = random.Random(seed)
    nanmen, zhonghe = _areas()
    sunshine = create_estate(nanmen, "阳光花园 Sunshine Garden", "海曙区南门街1号", "阳光物业")
    riverside = create_estate(zhonghe, "河畔新村 Riverside", "鄞州区中河路8号", "河畔物业")
    dwellings = _dwellings(rng, nanmen, sunshine, zhonghe, riverside)
    residents = _residents(rng, dwellings)
    passwords = _users(sunshine.id, riverside.id)
    return DemoCity(len(dwellings), residents, [sunshine.id, riverside.id], passwords)


def _areas() -> tuple[Area, Area]:
    """Ningbo, two districts with different policies, a station and a community in each."""
    create_area(
        "3302",
        "宁波市 Ningbo",
        None,
        {
            "min_area_per_person_m2": Decimal("4"),
            "area_basis": "usable",
            "max_persons_per_room": 2,
            "minors_count": False,
            "registration_deadline_days": 3,
            "card_return_grace_days": 7,
            "card_validity_days": 365,
        },
    )
    create_area("330203", "海曙区 Haishu", "3302", {})
    create_area(
        "330212",
        "鄞州区 Yinzhou",
        "3302",
        {"min_area_per_person_m2": Decimal("10"), "area_basis": "building"},
    )
    create_area("330203-NM", "南门派出所 Nanmen station", "330203", {})
    nanmen = create_area("330203-NM-01", "南门社区 Nanmen community", "330203-NM", {})
    create_area("330212-ZM", "中河派出所 Zhonghe station", "330212", {})
    zhonghe = create_area(
        "330212-ZM-01", "中河社区 Zhonghe community", "330212-ZM", {"minors_count": True}
    )
    return nanmen, zhonghe


def _dwellings(
    rng: random.Random, nanmen: Area, sunshine: Estate, zhonghe: Area, riverside: Estate
) -> list[Dwelling]:
    """Subdivided flats and a basement in Sunshine Garden; whole flats in Riverside."""
    dwellings = []
    for building in (1, 2):
        for flat in (101, 102, 201, 202):
            # Subdivided flats: 5-10 rooms on 40-90 m².
            rooms = rng.randrange(5, 11)
            usable = Decimal(rng.randrange(40, 91))
            dwellings.append(
                create_dwelling(
                    nanmen,
                    sunshine,
                    {
                        "address": f"海曙区南门街1号{building}幢{flat}室",
                        "usable_area_m2": usable,
                        "building_area_m2": usable * Decimal("1.25"),
                        "rooms": rooms,
                        "status": DwellingStatus.RENTABLE,
                        "landlord_name": "房东",
                    },
                )
            )
    dwellings.append(
        create_dwelling(
            nanmen,
            sunshine,
            {
                "address": "海曙区南门街1号3幢地下室",
                "usable_area_m2": Decimal("30"),
                "rooms": 3,
                "status": DwellingStatus.ILLEGAL,
            },
        )
    )
    for flat in (301, 302, 401):
        dwellings.append(
            create_dwelling(
                zhonghe,
                riverside,
                {
                    "address": f"鄞州区中河路8号1幢{flat}室",
                    "building_area_m2": Decimal("89"),
                    "usable_area_m2": Decimal("70"),
                    "rooms": 3,
                    "status": DwellingStatus.RENTABLE,
                },
            )
        )
    db.session.flush()
    return dwellings


def _residents(rng: random.Random, dwellings: list[Dwelling]) -> int:
    """One to three residents in every rentable dwelling, arrived within 200 days."""
    system = Identity("system", 0, "demo", "admin")
    today = local_today()
    residents = 0
    for dwelling in dwellings:
        if dwelling.status != DwellingStatus.RENTABLE:
            continue
        for _ in range(rng.randrange(1, 4)):
            document: ParsedDocument = parse_document("resident_id", demo_id_number(rng))
            name = rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(2))
            register_arrival(
                system,
                dwelling,
                document,
                name=name,
                arrived_on=today - timedelta(days=rng.randrange(0, 200)),
                phone=f"13{rng.randrange(100000000, 999999999)}",
                origin=rng.choice(ORIGINS),
            )
            residents += 1
    return residents


def _users(sunshine_id: int, riverside_id: int) -> dict[str, str]:
    """One user of every role, with a fresh password each."""
    passwords = {}
    for username, role, scopes in (
        ("admin", "admin", []),
        ("supervisor", "supervisor", ["area:330203"]),
        ("officer", "officer", ["area:330203-NM"]),
        ("manager", "manager", [f"estate:{sunshine_id}"]),
        ("manager2", "manager", [f"estate:{riverside_id}"]),
        ("auditor", "auditor", []),
    ):
        password = secrets.token_urlsafe(12)
        create_user(username, role, password, scopes)
        passwords[username] = password
    return passwords
