"""Valid identifiers, made in bulk: resident identity numbers (GB 11643-1999) on
real address codes, and Unified Social Credit Codes (GB 32100-2015) whose
embedded organization code passes GB 11714.

Address codes come from python-stdnum's ``cn/loc.dat``. A code is only valid
for people born while it existed (stdnum checks this), so each home area is a
lineage of codes over time: Rongcheng was 372133 (to 1983), 370633
(1983-1987), 371023 (1987-1988) and 371082 (from 1989).
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# (name, weight, lineage of address codes, newest last). A test checks that each
# lineage has a code valid in every birth year the generator uses.
BIRTHPLACES: tuple[tuple[str, float, tuple[str, ...]], ...] = (
    ("rongcheng", 0.62, ("372133", "370633", "371023", "371082")),
    ("wendeng", 0.07, ("372132", "370632", "371022", "371081", "371003")),
    ("rushan", 0.06, ("372130", "370630", "371021", "371083")),
    ("huancui", 0.08, ("372102", "370620", "371002")),
    ("qingdao", 0.05, ("370200",)),
    ("jinan", 0.04, ("370100",)),
    ("dalian", 0.03, ("210200",)),
    ("harbin", 0.02, ("230100",)),
    ("beijing-chaoyang", 0.015, ("110105",)),
    ("shanghai-xuhui", 0.015, ("310104",)),
)

_RIC_WEIGHTS = np.array([pow(2, 16 - i, 11) for i in range(17)], dtype=np.int64)
_USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)


@cache
def code_years(code: str) -> tuple[int, int]:
    """The first and last birth year for which stdnum accepts this address code."""
    from stdnum import numdb

    info = {k: v for _, props in numdb.get("cn/loc").info(code) for k, v in props.items()}
    county = info.get("county")
    if county is None:
        raise ValueError(f"unknown address code {code}")
    first, last = 9999, 0
    for part in county.split(","):
        if not part.startswith("["):
            return 0, 9999
        span = part[1:].split("]")[0]
        start, end = span.split("-")
        first = min(first, int(start) if start else 0)
        last = max(last, int(end) if end else 9999)
    return first, last


def address_codes(place: np.ndarray, birth_year: np.ndarray) -> np.ndarray:
    """For each person (birthplace index, birth year) the code valid in that year."""
    out = np.zeros(len(place), dtype=np.int64)
    for i, (_, _, lineage) in enumerate(BIRTHPLACES):
        mine = place == i
        if not mine.any():
            continue
        # Later codes win where spans overlap (1983 belongs to both sides).
        for code in lineage:
            first, last = code_years(code)
            hit = mine & (birth_year >= first) & (birth_year <= last)
            out[hit] = int(code)
        if (out[mine] == 0).any():
            raise ValueError(f"no address code for some births in {BIRTHPLACES[i][0]}")
    return out


def resident_ids(code: np.ndarray, ymd: np.ndarray, seq: np.ndarray) -> pa.Array:
    """18-character identity numbers from address code, yyyymmdd and 3-digit sequence."""
    body = code.astype(np.int64) * 10**11 + ymd.astype(np.int64) * 1000 + seq.astype(np.int64)
    digits = (body[:, None] // (10 ** np.arange(16, -1, -1, dtype=np.int64))) % 10
    check = (1 - 2 * (digits @ _RIC_WEIGHTS)) % 11  # ISO 7064 MOD 11-2, as stdnum.cn.ric
    check_chars = np.array(list("0123456789X"))[check]
    return pc.binary_join_element_wise(
        pc.cast(pa.array(body), pa.string()), pa.array(check_chars), ""
    )


def org_code_check(body: str) -> str:
    """GB 11714 check character of an 8-character organization code body."""
    values = [int(c) if c.isdigit() else ord(c) - ord("A") + 10 for c in body]
    check = 11 - sum(v * w for v, w in zip(values, _ORG_WEIGHTS, strict=True)) % 11
    return {10: "X", 11: "0"}.get(check, str(check))


def uscc(authority: str, org_type: str, admin_code: str, org_body: str) -> str:
    """A Unified Social Credit Code with both check characters."""
    head = authority + org_type + admin_code + org_body + org_code_check(org_body)
    total = sum(_USCC_ALPHABET.index(c) * w for c, w in zip(head, _USCC_WEIGHTS, strict=True))
    return head + _USCC_ALPHABET[(31 - total) % 31]


def org_code_bodies(rng: np.random.Generator, modern: np.ndarray) -> list[str]:
    """Unique organization-code bodies: 8 digits for older bodies, ``MA`` plus six
    code characters for those registered since the 2015 reform."""
    letters = np.array(list(_USCC_ALPHABET))
    seen: set[str] = set()
    bodies: list[str] = []
    for is_modern in modern:
        while True:
            if is_modern:
                body = "MA" + "".join(rng.choice(letters, 6))
            else:
                body = f"{int(rng.integers(10_000_000, 99_999_999)):08d}"
            if body not in seen:
                seen.add(body)
                bodies.append(body)
                break
    return bodies
