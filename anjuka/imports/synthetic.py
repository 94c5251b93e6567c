"""``anjuka gen-city``: a synthetic Ningbo in legacy CSV files, deterministic for a seed.

At ``--scale 1`` it is the city of the 2021 count: about 2.31 million rental
rooms and 3.52 million migrant residents, in 10 districts, their police
stations and communities. Ningbo's policy is set on the city (10 m² of
building area per person for commercial housing, two per room, minors not
counted, registration within 3 working days); communities of self-built
housing (城中村) set 4 m² of usable area instead.

The files are what a legacy registry exports (docs/import.md), errors
included: a few rows with a wrong check character, an unknown address, a
second current residence, an arrival after the export day; some digits
full-width. ``manifest.json`` records what was written and what an import
must make of it (rows accepted, rows rejected by reason, dwellings over
capacity as found), so a test can reconcile the two.

Everything streams: memory holds one number per dwelling, not the rows.
"""

from __future__ import annotations

import csv
import json
import random
from array import array
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_FLOOR, Decimal
from pathlib import Path
from typing import IO, Any

from anjuka.dwellings.models import DwellingStatus
from anjuka.imports.formats import COLUMNS
from anjuka.persons.identity import resident_id_check_char
from cardreader.cardno import make_card_no

#: Ningbo's count (宁波, 2021): rental rooms and migrant residents at scale 1.
ROOMS_AT_SCALE_1 = 2_310_000
RESIDENTS_AT_SCALE_1 = 3_520_000
CITY = ("3302", "宁波市")
DISTRICTS = (
    ("330203", "海曙区"),
    ("330205", "江北区"),
    ("330206", "北仑区"),
    ("330211", "镇海区"),
    ("330212", "鄞州区"),
    ("330213", "奉化区"),
    ("330281", "余姚市"),
    ("330282", "慈溪市"),
    ("330226", "宁海县"),
    ("330225", "象山县"),
)
#: Where Ningbo's migrant residents come from: (region code of the ID, origin as recorded).
ORIGINS = (
    ("341221", "安徽阜阳"),
    ("341522", "安徽六安"),
    ("522101", "贵州遵义"),
    ("522401", "贵州毕节"),
    ("361102", "江西上饶"),
    ("411502", "河南信阳"),
    ("411302", "河南南阳"),
    ("511302", "四川南充"),
    ("430502", "湖南邵阳"),
    ("530602", "云南昭通"),
    ("420102", "湖北武汉"),
    ("330102", "浙江杭州"),
)
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蒋蔡余杜叶程"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍红建文辉力永健斌宇浩凯鹏飞"
STREETS = (
    "中山",
    "解放",
    "人民",
    "和平",
    "建设",
    "新华",
    "江东",
    "兴宁",
    "百丈",
    "福明",
    "天童",
    "钱湖",
    "东海",
    "甬江",
    "世纪",
    "聚贤",
    "环城",
    "院士",
)
FOREIGN_NAMES = ("NGUYEN VAN AN", "KIM MIN JUN", "MARIA SILVA", "JOHN SMITH", "SOMCHAI DEE")
FULL_WIDTH = str.maketrans("0123456789", "０１２３４５６７８９")
EXPORT_YEARS = 5
ESTATE_WORDS = ("花园", "小区", "新村", "公寓")


@dataclass
class Manifest:
    """What was written, and what an import must make of it."""

    seed: int
    scale: float
    export_day: str
    rows: Counter = field(default_factory=Counter)
    dwellings_by_status: Counter = field(default_factory=Counter)
    over_capacity_as_found: int = 0
    current_residents: int = 0
    rejects: Counter = field(default_factory=Counter)
    full_width_rows: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "scale": self.scale,
            "export_day": self.export_day,
            "rows": dict(self.rows),
            "dwellings_by_status": dict(self.dwellings_by_status),
            "over_capacity_as_found": self.over_capacity_as_found,
            "current_residents": self.current_residents,
            "expected_rejects": dict(self.rejects),
            "full_width_rows": self.full_width_rows,
        }


def _capacity(
    building: Decimal | None, usable: Decimal | None, rooms: int, urban_village: bool, status: str
) -> int:
    """The registry's capacity rule (anjuka.dwellings.operations) for the generator's own count."""
    if status != DwellingStatus.RENTABLE:
        return 0
    if urban_village:
        per_person, measured = Decimal(4), usable or building
    else:
        per_person, measured = Decimal(10), building or usable
    area_limit = int((measured / per_person).to_integral_value(ROUND_FLOOR)) if measured else 0
    return min(area_limit, rooms * 2)


class _Writer:
    """CSV files in the output folder, one per kind, in one encoding."""

    def __init__(self, out: Path, encoding: str, stack: ExitStack) -> None:
        self.writers: dict[str, Any] = {}
        self.out, self.encoding, self.stack = out, encoding, stack

    def __call__(self, kind: str, row: dict[str, object]) -> None:
        if kind not in self.writers:
            handle: IO[str] = self.stack.enter_context(
                (self.out / f"{kind}.csv").open("w", encoding=self.encoding, newline="")
            )
            writer = csv.DictWriter(handle, fieldnames=COLUMNS[kind])
            writer.writeheader()
            self.writers[kind] = writer
        self.writers[kind].writerow({k: "" if v is None else v for k, v in row.items()})


class CityGenerator:
    """Writes one synthetic city; ``progress(n)`` is told of every n rows written."""

    def __init__(self, scale: float, seed: int, export_day: date) -> None:
        if not 0 < scale <= 2:
            raise ValueError("scale must be above 0 and at most 2")
        self.scale, self.seed, self.export_day = scale, seed, export_day
        self.rng = random.Random(seed)
        self.manifest = Manifest(seed, scale, export_day.isoformat())
        self._id_serials: Counter = Counter()
        self._card_serial = 0
        self._phone_serial = 0
        self._capacities = array("H")
        self._occupied = array("H")
        self._passport_serial = 0

    # -- sizes -------------------------------------------------------------

    @property
    def stations_per_district(self) -> int:
        return max(1, round(15 * self.scale**0.5))

    @property
    def communities_per_station(self) -> int:
        return max(1, round(20 * self.scale**0.5))

    @property
    def target_rooms(self) -> int:
        return max(50, round(ROOMS_AT_SCALE_1 * self.scale))

    @property
    def target_residents(self) -> int:
        return max(60, round(RESIDENTS_AT_SCALE_1 * self.scale))

    def expected_rows(self) -> int:
        """Rows the city will have, about (for a progress bar)."""
        return int(self.target_rooms / 2.4 * 2 + self.target_residents * 2.2)

    # -- records -----------------------------------------------------------

    def _id_number(self, region: str, birth: date) -> str:
        key = (region, birth)
        self._id_serials[key] += 1
        serial = self._id_serials[key]
        if serial > 999:  # this region and day are used up: take the next day
            return self._id_number(region, birth + timedelta(days=1))
        first17 = f"{region}{birth:%Y%m%d}{serial:03d}"
        return first17 + resident_id_check_char(first17)

    def _phone(self) -> str:
        self._phone_serial += 1
        prefix = self.rng.choice(("138", "139", "150", "151", "158", "186", "187", "189"))
        return f"{prefix}{(self._phone_serial * 7919) % 10**8:08d}"

    def _name(self) -> str:
        given = "".join(self.rng.choice(GIVEN) for _ in range(self.rng.choice((1, 2, 2))))
        return self.rng.choice(SURNAMES) + given

    def _address(self) -> str:
        rng = self.rng
        building, room = rng.randrange(1, 30), rng.randrange(101, 3300)
        return f"{rng.choice(STREETS)}路{rng.randrange(1, 999)}号{building}幢{room}室"

    def _day_within(self, years: float) -> date:
        return self.export_day - timedelta(days=self.rng.randrange(0, max(1, int(365 * years))))

    # -- the run -----------------------------------------------------------

    def write(
        self, out: Path, *, encoding: str = "utf-8", progress: Callable[[int], None] | None = None
    ) -> Manifest:
        """Write the city's files into ``out`` (created); returns the manifest, also written."""
        out.mkdir(parents=True, exist_ok=True)
        tick = progress or (lambda _n: None)
        with ExitStack() as stack:
            emit = _Writer(out, encoding, stack)

            def write(kind: str, row: dict[str, object]) -> None:
                emit(kind, row)
                self.manifest.rows[kind] += 1
                tick(1)

            communities = self._areas(write)
            dwellings = self._dwellings(write, communities)
            self._residents(write, dwellings)
        (out / "manifest.json").write_text(
            json.dumps(self.manifest.as_json(), indent=2, ensure_ascii=False)
        )
        return self.manifest

    def _areas(self, write: Callable[[str, dict[str, object]], None]) -> list[tuple[str, bool]]:
        """The area tree; returns the communities and whether each is self-built housing."""
        code, name = CITY
        write(
            "areas",
            {
                "code": code,
                "name": name,
                "min_area_per_person_m2": "10",
                "area_basis": "building",
                "max_persons_per_room": 2,
                "minors_count": "false",
                "registration_deadline_days": 3,
                "card_return_grace_days": 7,
                "card_validity_days": 365,
            },
        )
        communities = []
        for district, district_name in DISTRICTS:
            write("areas", {"code": district, "name": district_name, "parent_code": code})
            for s in range(self.stations_per_district):
                station = f"{district}{s + 1:02d}"
                write(
                    "areas",
                    {
                        "code": station,
                        "name": f"{district_name}第{s + 1}派出所",
                        "parent_code": district,
                    },
                )
                for c in range(self.communities_per_station):
                    community = f"{station}{c + 1:03d}"
                    village = self.rng.random() < 0.3
                    kind = "村" if village else "社区"
                    policy: dict[str, object] = {}
                    if village:
                        policy = {"min_area_per_person_m2": "4", "area_basis": "usable"}
                    write(
                        "areas",
                        {
                            "code": community,
                            "name": f"{district_name}{self.rng.choice(STREETS)}{kind}{c + 1}",
                            "parent_code": station,
                            **policy,
                        },
                    )
                    communities.append((community, village))
        return communities

    def _dwellings(
        self, write: Callable[[str, dict[str, object]], None], communities: list[tuple[str, bool]]
    ) -> tuple[list[str], array]:
        """Estates, dwellings and their landlords; returns address codes and capacities."""
        rng = self.rng
        estates_wanted = max(len(communities), round(11_500 * self.scale))
        estates: list[tuple[str, str, bool]] = []
        for n in range(estates_wanted):
            community, village = communities[n % len(communities)]
            estate_code = f"E{n + 1:06d}"
            write(
                "estates",
                {
                    "estate_code": estate_code,
                    "area_code": community,
                    "name": f"{rng.choice(STREETS)}{rng.choice(ESTATE_WORDS)}{n + 1}",
                    "address": f"{rng.choice(STREETS)}路{rng.randrange(1, 999)}号",
                    "property_company": f"甬城物业{n % 97 + 1}",
                },
            )
            estates.append((estate_code, community, village))
        codes: list[str] = []
        capacities = array("H")
        rooms_written = 0
        landlord = 0
        landlord_left = 0
        landlord_row: dict[str, object] = {}
        while rooms_written < self.target_rooms:
            estate_code, community, village = estates[len(codes) % len(estates)]
            if rng.random() < 0.2:
                estate_code = ""  # a house in a village, not in any estate
            kind = rng.random()
            if kind < 0.80:  # a whole flat
                rooms = rng.choice((1, 2, 2, 3, 3, 4))
                building = Decimal(rng.randrange(35 + rooms * 15, 60 + rooms * 25))
                usable = (building * Decimal("0.78")).quantize(Decimal("0.01"))
            elif kind < 0.95:  # a flat split into rooms (群租 risk)
                rooms = rng.randrange(5, 11)
                building = Decimal(rng.randrange(80, 141))
                usable = (building * Decimal("0.8")).quantize(Decimal("0.01"))
            else:  # a rented room of a self-built house: only its usable area is known
                rooms, building = 1, None
                usable = Decimal(rng.randrange(8, 21))
            status = DwellingStatus.RENTABLE
            chance = rng.random()
            if chance < 0.01:
                status = DwellingStatus.ILLEGAL
            elif chance < 0.02:
                status = DwellingStatus.NOT_FOR_RENT
            if landlord_left == 0:  # most own one flat; a sublessor (二房东) runs many
                landlord += 1
                landlord_left = rng.choice((1, 1, 1, 1, 2, 3, rng.randrange(5, 30)))
                landlord_row = {
                    "landlord_code": f"L{landlord:07d}",
                    "name": self._name(),
                    "phone": self._phone(),
                    "dwellings": landlord_left,
                }
                write("landlords", landlord_row)
            landlord_left -= 1
            address_code = f"{community}{len(codes) + 1:08d}"
            write(
                "dwellings",
                {
                    "address_code": address_code,
                    "area_code": community,
                    "estate_code": estate_code,
                    "address": self._address(),
                    "building_area_m2": building,
                    "usable_area_m2": usable,
                    "rooms": rooms,
                    "status": status,
                    "landlord_code": landlord_row["landlord_code"],
                    "landlord_name": landlord_row["name"],
                    "landlord_phone": landlord_row["phone"],
                },
            )
            self.manifest.dwellings_by_status[status] += 1
            codes.append(address_code)
            capacities.append(_capacity(building, usable, rooms, village, status))
            rooms_written += rooms
        return codes, capacities

    def _person(self, *, adult: bool = False) -> dict[str, object]:
        rng = self.rng
        if rng.random() < 0.005:
            self._passport_serial += 1
            number = f"{rng.choice('EGPK')}{10**7 + self._passport_serial * 7919 % (9 * 10**7)}"
            return {
                "document_type": "passport",
                "document_number": number,
                "name": rng.choice(FOREIGN_NAMES),
                "sex": rng.choice("FM"),
                "birth_date": date(1970, 1, 1) + timedelta(days=rng.randrange(0, 365 * 35)),
                "phone": self._phone(),
                "origin": "境外",
            }
        region, origin = rng.choice(ORIGINS)
        minor = not adult and rng.random() < 0.06
        if minor:
            birth = self.export_day - timedelta(days=rng.randrange(365 * 2, 365 * 17))
        else:
            birth = date(1962, 1, 1) + timedelta(days=rng.randrange(0, 365 * 42))
        number = self._id_number(region, birth)
        return {
            "document_type": "resident_id",
            "document_number": number,
            "name": self._name(),
            "sex": "M" if int(number[16]) % 2 else "F",
            "birth_date": birth,
            "phone": None if minor else self._phone(),
            "origin": origin,
            "_minor": minor,
        }

    def _residents(
        self, write: Callable[[str, dict[str, object]], None], dwellings: tuple[list[str], array]
    ) -> None:
        """Current residents up to each dwelling's occupancy, past residences, moves, cards."""
        rng = self.rng
        codes, capacities = dwellings
        self._capacities = capacities
        self._occupied = array("H", bytes(2 * len(capacities)))
        total_capacity = sum(capacities) or 1
        fill = min(0.95, self.target_residents / total_capacity)
        for index, address_code in enumerate(codes):
            capacity = capacities[index]
            if capacity == 0:
                continue
            counted = sum(1 for _ in range(capacity) if rng.random() < fill)
            crowded = capacity >= 8 and rng.random() < 0.05
            if crowded:  # a crowded split flat, as the patrol found it: adults beyond the rule
                counted = capacity + rng.randrange(1, 9)
                self.manifest.over_capacity_as_found += 1
            for _ in range(counted):
                self._one_resident(write, address_code, codes, adult=crowded)
            self._occupied[index] = min(counted, 65535)
        # Residents who left the city: departed residences only.
        for _ in range(int(self.target_residents * 0.3)):
            person = self._person()
            arrived = self._day_within(EXPORT_YEARS)
            departed = min(self.export_day, arrived + timedelta(days=rng.randrange(30, 700)))
            self._row(write, person, rng.choice(codes), arrived, departed)
        self._inject_errors(write, codes)

    def _one_resident(
        self,
        write: Callable[[str, dict[str, object]], None],
        address_code: str,
        codes: list[str],
        *,
        adult: bool = False,
    ) -> None:
        rng = self.rng
        person = self._person(adult=adult)
        arrived = self._day_within(3)
        if rng.random() < 0.35:  # moved here from another dwelling of the city
            before = arrived - timedelta(days=rng.randrange(60, 900))
            self._row(write, person, rng.choice(codes), before, arrived)
        self._row(write, person, address_code, arrived, None)
        self.manifest.current_residents += 1
        if rng.random() < 0.85:
            self._card_serial += 1
            expires = arrived + timedelta(days=365)
            write(
                "cards",
                {
                    "card_no": make_card_no(self._card_serial),
                    "document_number": person["document_number"],
                    "address_code": address_code,
                    "arrived_on": arrived.isoformat(),
                    "status": "active" if expires >= self.export_day else "expired",
                    "expires_on": expires.isoformat(),
                },
            )

    def _row(
        self,
        write: Callable[[str, dict[str, object]], None],
        person: dict[str, object],
        address_code: str,
        arrived: date,
        departed: date | None,
        *,
        full_width: bool | None = None,
    ) -> None:
        number = str(person["document_number"])
        if full_width if full_width is not None else self.rng.random() < 0.01:
            number = number.translate(FULL_WIDTH)  # typed with a Chinese input method
            self.manifest.full_width_rows += 1
        write(
            "residents",
            {
                "document_type": person["document_type"],
                "document_number": number,
                "name": person["name"],
                "sex": person["sex"],
                "birth_date": person["birth_date"].isoformat()
                if isinstance(person["birth_date"], date)
                else "",
                "phone": person["phone"],
                "origin": person["origin"],
                "address_code": address_code,
                "arrived_on": arrived.isoformat(),
                "departed_on": departed.isoformat() if departed else None,
            },
        )

    def _inject_errors(
        self, write: Callable[[str, dict[str, object]], None], codes: list[str]
    ) -> None:
        """What a legacy export always holds: the rows an import must refuse, with reasons."""
        rng = self.rng
        count = max(1, round(self.target_residents * 0.002))
        for n in range(count):
            person = self._person()
            arrived = self._day_within(1)
            reason = (
                "invalid_id_number",
                "dwelling_not_found",
                "arrival_in_future",
                "already_registered",
            )[n % 4]
            if reason == "invalid_id_number":
                if person["document_type"] != "resident_id":
                    continue
                number = str(person["document_number"])
                wrong = "0123456789X"[("0123456789X".index(number[-1]) + 1) % 11]
                person = {**person, "document_number": number[:-1] + wrong}
                self._row(write, person, rng.choice(codes), arrived, None, full_width=False)
            elif reason == "dwelling_not_found":
                self._row(write, person, "NO-SUCH-ADDRESS", arrived, None, full_width=False)
            elif reason == "arrival_in_future":
                future = self.export_day + timedelta(days=3)
                self._row(write, person, rng.choice(codes), future, None, full_width=False)
            else:
                # Two current residences for one person: the first stands, the second is refused.
                home, other = self._rentable(codes), self._rentable(codes)
                if home is None or other is None or home == other:
                    continue
                self._row(write, person, home, arrived, None, full_width=False)
                self.manifest.current_residents += 1
                self._row(write, person, other, arrived, None, full_width=False)
            self.manifest.rejects[reason] += 1

    def _rentable(self, codes: list[str]) -> str | None:
        """A dwelling with a place free (a valid home for an injected row), taking the place."""
        for _ in range(200):
            index = self.rng.randrange(len(codes))
            if self._occupied[index] < self._capacities[index]:
                self._occupied[index] += 1
                return codes[index]
        return None


def generate_city(
    out: Path,
    *,
    scale: float,
    seed: int,
    export_day: date,
    encoding: str = "utf-8",
    progress: Callable[[int], None] | None = None,
) -> Manifest:
    """Write a synthetic city into ``out``; see the module's docstring."""
    return CityGenerator(scale, seed, export_day).write(out, encoding=encoding, progress=progress)


def rows(path: Path, encoding: str = "utf-8") -> Iterator[dict[str, str]]:
    """The rows of one written file (for tests)."""
    with path.open(encoding=encoding, newline="") as handle:
        yield from csv.DictReader(handle)
