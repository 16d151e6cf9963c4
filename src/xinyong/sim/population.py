"""Who lives in the simulated city: persons and organizations as numpy columns.

Persons are held as small numeric columns (10 M persons take about 150 MB);
identity-number strings are made per chunk when records are written.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from xinyong.sim.identifiers import BIRTHPLACES, address_codes, org_code_bodies, resident_ids
from xinyong.sim.identifiers import uscc as make_uscc

DAY0 = np.datetime64("1970-01-01", "D")
YEAR = 365.25

# Age at the end of the simulation, by 5-year band (0-4 ... 90-94): shaped on
# an ageing coastal Shandong county, about 17 % under 18.
AGE_BANDS = np.array(
    [3.5, 4.5, 5.5, 5.5, 5.0, 5.3, 7.5, 8.0, 7.0, 7.0, 8.5, 8.5, 7.0, 6.5, 5.0, 3.0, 2.0, 1.0, 0.4]
)
RESIDENCE_CODES = ("371082", "371000")  # Rongcheng; elsewhere in Weihai
RESIDENT_OF_RONGCHENG = 0.85
RISK_SIGMA = 0.9  # lognormal latent risk, mean 1

_SURNAMES = list("王张李刘孙杨徐陈于赵高周吴马郭林宋曲毕丛邹董谷鞠姜")
_SURNAME_W = np.array(
    [12, 10, 9, 8, 6, 4, 3, 4, 4, 3, 3, 3, 2, 2, 2, 2, 2, 1.5, 2, 1.5, 1, 1, 1, 1.5, 1.5]
)
_GIVEN = list("伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰建国志红文海波晓宇浩然欣怡子涵")
_ORG_PLACE = {"371082": "荣成市", "371002": "威海市环翠区", "371000": "威海市"}
_ORG_WORDS = list("海洋鑫盛华泰宏达恒丰瑞祥福安顺通远航石岛龙须俚岛成山")
_ORG_TRADES = (
    "水产品有限公司",
    "渔业有限公司",
    "食品有限公司",
    "机械制造有限公司",
    "建筑工程有限公司",
    "商贸有限公司",
    "物流有限公司",
    "海带养殖专业合作社",
    "酒店管理有限公司",
    "船舶修造有限公司",
    "海参加工厂",
    "超市",
    "汽车维修中心",
    "装饰工程有限公司",
    "电子商务有限公司",
)


@dataclass
class Persons:
    place: np.ndarray  # index into BIRTHPLACES
    birth_day: np.ndarray  # days since 1970-01-01
    seq: np.ndarray  # 3-digit sequence; odd = male
    risk: np.ndarray
    residence: np.ndarray  # index into RESIDENCE_CODES
    code: np.ndarray  # address code in the identity number

    def __len__(self) -> int:
        return len(self.birth_day)

    def ids(self, rows: np.ndarray | slice) -> pa.Array:
        ymd = _yyyymmdd(self.birth_day[rows])
        return resident_ids(self.code[rows], ymd, self.seq[rows])


@dataclass
class Organizations:
    subject_id: np.ndarray  # str
    name: np.ndarray  # str
    founded_day: np.ndarray
    risk: np.ndarray
    residence: np.ndarray
    legal_rep: np.ndarray  # person row of the first legal representative

    def __len__(self) -> int:
        return len(self.founded_day)


def _yyyymmdd(days: np.ndarray) -> np.ndarray:
    d = DAY0 + days.astype("timedelta64[D]")
    y = d.astype("datetime64[Y]").astype(np.int64) + 1970
    m = d.astype("datetime64[M]").astype(np.int64) % 12 + 1
    dd = (d - d.astype("datetime64[M]")).astype(np.int64) + 1
    return y * 10000 + m * 100 + dd


def birth_years(days: np.ndarray) -> np.ndarray:
    return (DAY0 + days.astype("timedelta64[D]")).astype("datetime64[Y]").astype(np.int64) + 1970


def _risk(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.lognormal(-(RISK_SIGMA**2) / 2, RISK_SIGMA, n).astype(np.float32)


def make_persons(rng: np.random.Generator, n: int, end_day: int) -> Persons:
    band = rng.choice(len(AGE_BANDS), n, p=AGE_BANDS / AGE_BANDS.sum())
    age_days = (band * 5 + rng.random(n) * 5) * YEAR
    birth_day = (end_day - 1 - age_days).astype(np.int32)
    weights = np.array([w for _, w, _ in BIRTHPLACES])
    place = rng.choice(len(BIRTHPLACES), n, p=weights / weights.sum()).astype(np.int8)
    code = address_codes(place, birth_years(birth_day)).astype(np.int32)
    seq = rng.integers(0, 1000, n).astype(np.int16)
    # Identity numbers must be unique: redraw the sequence of later duplicates.
    while True:
        key = code.astype(np.int64) * 10**11 + _yyyymmdd(birth_day) * 1000 + seq
        _, first = np.unique(key, return_index=True)
        dup = np.ones(n, dtype=bool)
        dup[first] = False
        if not dup.any():
            break
        seq[dup] = rng.integers(0, 1000, int(dup.sum()))
    residence = (rng.random(n) >= RESIDENT_OF_RONGCHENG).astype(np.int8)
    return Persons(place, birth_day, seq, _risk(rng, n), residence, code)


def person_names(rng: np.random.Generator, n: int) -> pa.Array:
    w = _SURNAME_W / _SURNAME_W.sum()
    sur = np.array(_SURNAMES)[rng.choice(len(_SURNAMES), n, p=w)]
    g1 = np.array(_GIVEN)[rng.integers(0, len(_GIVEN), n)]
    g2 = np.where(rng.random(n) < 0.7, np.array(_GIVEN)[rng.integers(0, len(_GIVEN), n)], "")
    return pa.array(np.char.add(np.char.add(sur, g1), g2).tolist(), pa.string())


def pick_adults(
    rng: np.random.Generator, persons: Persons, on_day: np.ndarray, lo: int = 22, hi: int = 70
) -> np.ndarray:
    """For each day, a random person aged lo..hi then (the legal representative)."""
    rows = rng.integers(0, len(persons), len(on_day))
    for _ in range(50):
        age = (on_day - persons.birth_day[rows]) / YEAR
        bad = (age < lo) | (age > hi)
        if not bad.any():
            break
        rows[bad] = rng.integers(0, len(persons), int(bad.sum()))
    return rows


def make_organizations(
    rng: np.random.Generator, n: int, persons: Persons, start_day: int, end_day: int
) -> Organizations:
    old = rng.random(n) < 0.4
    founded_old = rng.integers(int(np.datetime64("1995-01-01").astype(int)), start_day, n)
    founded_new = rng.integers(start_day, end_day - 1, n)
    founded = np.where(old, founded_old, founded_new).astype(np.int32)
    admin = np.array(list(_ORG_PLACE))[rng.choice(3, n, p=[0.75, 0.15, 0.10])]
    kind = rng.choice(["1", "2", "3"], n, p=[0.85, 0.12, 0.03])
    # Organization codes issued since the 2015 reform begin with "MA".
    bodies = org_code_bodies(rng, founded >= int(np.datetime64("2015-10-01").astype(int)))
    ids = np.array([make_uscc("9", k, a, b) for k, a, b in zip(kind, admin, bodies, strict=True)])
    words = np.array(_ORG_WORDS)
    names = [
        _ORG_PLACE[a] + w1 + w2 + t
        for a, w1, w2, t in zip(
            admin,
            words[rng.integers(0, len(words), n)],
            words[rng.integers(0, len(words), n)],
            np.array(_ORG_TRADES)[rng.integers(0, len(_ORG_TRADES), n)],
            strict=True,
        )
    ]
    # Several firms can share a trade name; the registry keys on the code.
    residence = (admin != "371082").astype(np.int8)
    legal_rep = pick_adults(rng, persons, founded) if len(persons) else np.zeros(n, np.int64)
    return Organizations(ids, np.array(names), founded, _risk(rng, n), residence, legal_rep)
