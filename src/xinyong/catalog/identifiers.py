"""Subject identifiers: resident identity numbers (GB 11643-1999) for persons and
Unified Social Credit Codes (GB 32100-2015) for organizations and government bodies.

Validation uses python-stdnum (`stdnum.cn.ric`, `stdnum.cn.uscc`) with corrections:

* An identity number's address code records the place of *first issue*, not of
  birth, and python-stdnum's table of codes valid per year is incomplete. A number
  whose check character and birth date are right but whose address code stdnum
  does not know for the birth year is accepted and flagged `address_code_unknown`.
  (stdnum also raises a bare KeyError, not a ValidationError, for an unknown
  county code inside a known province; both cases are caught here.)
* A USCC embeds the 9-character organization code of GB 11714 (positions 9-17:
  8 body characters + a check character). stdnum.cn has no module for that code
  and `stdnum.cn.uscc` only checks the USCC's own check character, so the GB 11714
  check is implemented here (`org_code_check_char`).

`parse_subject_id` is the scalar reference; `classify_ids` is the vectorized
(numpy) version used by bulk intake, which asks `parse_subject_id` for the exact
reason only for the ids it fails.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import TYPE_CHECKING, Literal

from stdnum import numdb
from stdnum.cn import ric, uscc
from stdnum.exceptions import InvalidComponent

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

# numpy and pyarrow are imported inside the vectorized functions below: a single
# identifier (a check) needs neither, and importing them costs a check its time.

SubjectKind = Literal["person", "organization"]

ADDRESS_CODE_UNKNOWN = "address_code_unknown"

#: Earliest plausible birth year on an 18-digit identity number (issued from 1999
#: to the living population of then).
MIN_BIRTH_YEAR = 1880

_RIC_WEIGHTS = [pow(2, 17 - i, 11) for i in range(17)]  # 7,9,10,5,8,4,2,1,6,3,7,9,10,5,8,4,2
_USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"  # GB 32100: no I, O, Z, S, V
_USCC_WEIGHTS = [pow(3, i, 31) for i in range(17)]
_ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)


class InvalidIdentifier(ValueError):  # noqa: N818 - name fixed by docs/INTERFACES.md
    """Not a valid resident identity number or unified social credit code."""


@dataclass(frozen=True, slots=True)
class SubjectId:
    value: str
    kind: SubjectKind
    birth_date: _dt.date | None = None
    flags: tuple[str, ...] = ()


def normalize(text: str) -> str:
    """Strip surrounding whitespace and upper-case (a lower-case x becomes X)."""
    return text.strip().upper()


def ric_check_char(first17: str) -> str:
    """ISO 7064 MOD 11-2 check character of GB 11643-1999."""
    total = sum(int(c) * w for c, w in zip(first17, _RIC_WEIGHTS, strict=True))
    check = (12 - total % 11) % 11
    return "X" if check == 10 else str(check)


def org_code_check_char(body8: str) -> str:
    """GB 11714 check character of an 8-character organization code body.

    Characters are valued 0-9 and A=10 ... Z=35; check = 11 - sum % 11 with
    10 -> 'X' and 11 -> '0'.
    """
    total = 0
    for c, w in zip(body8, _ORG_WEIGHTS, strict=True):
        if c.isdigit():
            v = int(c)
        elif "A" <= c <= "Z":
            v = ord(c) - 55
        else:
            raise ValueError(f"not an organization code character: {c!r}")
        total += v * w
    check = 11 - total % 11
    return {10: "X", 11: "0"}.get(check, str(check))


def _birth_date(number: str) -> _dt.date:
    try:
        born = ric.get_birth_date(number)
    except InvalidComponent:
        raise InvalidIdentifier(
            f"{number}: birth date {number[6:10]}-{number[10:12]}-{number[12:14]} "
            "in the identity number is not a calendar date"
        ) from None
    if born.year < MIN_BIRTH_YEAR or born > _today():
        raise InvalidIdentifier(f"{number}: implausible birth date {born.isoformat()}")
    return born


def _today() -> _dt.date:
    return (_dt.datetime.now(_dt.UTC) + _dt.timedelta(hours=8)).date()


def _address_known(number: str) -> bool:
    return _address_known_in(number[:6], number[6:10])


@lru_cache(maxsize=1 << 16)
def _address_known_in(code: str, year: str) -> bool:
    """Whether the address code was assigned in the birth year: stdnum's lookup reads
    only these two parts, and costs ~170 us (a bulk check of 100 k subjects asks it
    for each), so it is asked once per (code, year)."""
    try:
        ric.get_birth_place(f"{code}{year}01010000")
    except (InvalidComponent, KeyError):  # KeyError: stdnum, unknown county of a known province
        return False
    return True


def _parse_ric(number: str, flags: bool = True) -> SubjectId:
    if not number[:17].isdigit() or not number[:17].isascii():
        raise InvalidIdentifier(f"{number}: an identity number has 17 digits and a check character")
    if number[17] not in "0123456789X":
        raise InvalidIdentifier(f"{number}: check character must be a digit or X")
    expected = ric.calc_check_digit(number)
    if number[17] != expected:
        raise InvalidIdentifier(
            f"{number}: wrong check character {number[17]!r} (expected {expected!r})"
        )
    born = _birth_date(number)
    if not flags:
        return SubjectId(number, "person", born)
    found = () if _address_known(number) else (ADDRESS_CODE_UNKNOWN,)
    return SubjectId(number, "person", born, found)


def _parse_uscc(number: str) -> SubjectId:
    try:
        uscc.validate(number)
    except Exception as exc:  # stdnum ValidationError subclasses
        name = type(exc).__name__
        if name == "InvalidChecksum":
            expected = uscc.calc_check_digit(number)
            raise InvalidIdentifier(
                f"{number}: wrong check character {number[17]!r} (expected {expected!r})"
            ) from None
        raise InvalidIdentifier(
            f"{number}: not a unified social credit code (8 digits, then 10 characters "
            "of 0-9 and A-Y without I, O, S, V, Z)"
        ) from None
    expected = org_code_check_char(number[8:16])
    if number[16] != expected:
        raise InvalidIdentifier(
            f"{number}: embedded organization code {number[8:16]}-{number[16]} has a wrong "
            f"check character (GB 11714 expects {expected!r})"
        )
    return SubjectId(number, "organization")


def parse_subject_id(text: str, *, flags: bool = True) -> SubjectId:
    """Validate and classify a subject identifier.

    An 18-character value that is a valid identity number is a person; else a
    valid unified social credit code is an organization; else InvalidIdentifier
    with the reason (both reasons where the value could be either). ``flags=False``
    skips the address-code lookup, which only ever adds a flag (never refuses) and
    loads python-stdnum's address database: a check needs the identifier only.
    """
    if not isinstance(text, str):
        raise InvalidIdentifier(f"subject identifier must be text, not {type(text).__name__}")
    number = normalize(text)
    if len(number) != 18:
        raise InvalidIdentifier(
            f"{number!r}: must be 18 characters (identity number or unified social credit "
            f"code), found {len(number)}"
        )
    ric_like = number[:17].isdigit() and number[:17].isascii() and number[17] in "0123456789X"
    ric_error: InvalidIdentifier | None = None
    if ric_like:
        try:
            return _parse_ric(number, flags)
        except InvalidIdentifier as exc:
            ric_error = exc
    try:
        return _parse_uscc(number)
    except InvalidIdentifier as exc:
        if ric_error is None:
            raise
        raise InvalidIdentifier(
            f"not a valid identity number ({ric_error}) nor unified social credit code ({exc})"
        ) from None


def parse_person_id(text: str) -> SubjectId:
    """Like parse_subject_id, but only a resident identity number is accepted."""
    sid = parse_subject_id(text)
    if sid.kind != "person":
        raise InvalidIdentifier(f"{sid.value}: not a resident identity number")
    return sid


# --------------------------------------------------------------------------------------
# Vectorized validation for bulk intake.

_YEAR0 = 1800
_YEARS = 500  # address-code validity kept for years 1800..2299


@cache
def _address_table() -> tuple[np.ndarray, np.ndarray]:
    import numpy as np

    """(sorted 6-digit address codes as int, bool matrix code x year-1800) from stdnum's
    table, interpreted exactly as `stdnum.cn.ric.get_birth_place` does."""
    db = numdb.get("cn/loc")
    codes: list[int] = []
    masks: list[np.ndarray] = []
    for plen, plo, phi, _props, children in db.prefixes:
        if plen != 2 or plo != phi:
            continue
        for clen, clo, chi, cprops, _ in children:
            county = cprops.get("county")
            if clen != 4 or clo != chi or not county:
                continue
            mask = np.zeros(_YEARS, dtype=bool)
            for piece in county.split(","):
                if not piece.startswith("["):
                    mask[:] = True
                    break
                start, end = piece[1:].split("]")[0].split("-")
                lo = int(start) - _YEAR0 if start else 0
                hi = int(end) - _YEAR0 + 1 if end else _YEARS
                mask[max(lo, 0) : max(min(hi, _YEARS), 0)] = True
            codes.append(int(plo + clo))
            masks.append(mask)
    order = np.argsort(codes)
    return np.asarray(codes, dtype=np.int64)[order], np.asarray(masks)[order]


def _digits(chars: np.ndarray) -> np.ndarray:
    import numpy as np

    return chars.astype(np.int64) - 48


def classify_ids(values: pa.Array | Sequence[str]) -> dict[str, np.ndarray]:
    """Vectorized fast path over already-normalized ids (strings, or an Arrow array).

    Returns arrays aligned with `values`: `kind` (0 invalid or undecided, 1 person,
    2 organization), `birth` (datetime64[D], NaT if none), `flag` (bool,
    address_code_unknown). Ids with kind 0 must be re-checked with
    parse_subject_id for the reason (or a rare valid form the fast path skips).
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = values if isinstance(values, pa.Array) else pa.array(list(values), pa.string())
    arr = arr.cast(pa.string())
    n = len(arr)
    kind = np.zeros(n, dtype=np.int8)
    birth = np.full(n, np.datetime64("NaT"), dtype="datetime64[D]")
    flag = np.zeros(n, dtype=bool)
    blen = pc.binary_length(arr).fill_null(0).to_numpy(zero_copy_only=False)
    idx = np.nonzero(blen == 18)[0]
    if idx.size == 0:
        return {"kind": kind, "birth": birth, "flag": flag}
    # 18-byte values laid end to end: one (m, 18) byte matrix, no Python loop
    sub = pa.concat_arrays([arr.take(pa.array(idx))])
    offsets = np.frombuffer(sub.buffers()[1], dtype=np.int32)[sub.offset : sub.offset + 2]
    data = np.frombuffer(sub.buffers()[2], dtype=np.uint8)
    chars = data[offsets[0] : offsets[0] + 18 * idx.size].reshape(-1, 18)

    # --- resident identity numbers
    is_digit = (chars >= 48) & (chars <= 57)
    d = _digits(chars)
    ric_fmt = is_digit[:, :17].all(axis=1) & (is_digit[:, 17] | (chars[:, 17] == ord("X")))
    total = (d[:, :17] * np.asarray(_RIC_WEIGHTS, dtype=np.int64)).sum(axis=1)
    check = (12 - total % 11) % 11
    got = np.where(chars[:, 17] == ord("X"), 10, d[:, 17])
    year = d[:, 6] * 1000 + d[:, 7] * 100 + d[:, 8] * 10 + d[:, 9]
    month = d[:, 10] * 10 + d[:, 11]
    day = d[:, 12] * 10 + d[:, 13]
    leap = ((year % 4 == 0) & (year % 100 != 0)) | (year % 400 == 0)
    mdays = np.asarray([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int64)
    month_c = np.clip(month, 0, 12)
    dim = mdays[month_c] + ((month_c == 2) & leap)
    today = np.datetime64(_today(), "D")
    date_ok = (month >= 1) & (month <= 12) & (day >= 1) & (day <= dim) & (year >= MIN_BIRTH_YEAR)
    born = np.full(idx.size, np.datetime64("NaT"), dtype="datetime64[D]")
    if date_ok.any():
        y = (year[date_ok] - 1970).astype("datetime64[Y]")
        m = (y.astype("datetime64[M]") + (month[date_ok] - 1)).astype("datetime64[D]")
        born[date_ok] = m + (day[date_ok] - 1)
    date_ok &= born <= today
    person = ric_fmt & (got == check) & date_ok
    kind_sub = np.where(person, 1, 0).astype(np.int8)

    codes, masks = _address_table()
    addr = (d[:, :6] * np.asarray([10**5, 10**4, 10**3, 100, 10, 1])).sum(axis=1)
    pos = np.clip(np.searchsorted(codes, addr), 0, len(codes) - 1)
    found = codes[pos] == addr
    yo = year - _YEAR0
    in_range = (yo >= 0) & (yo < _YEARS)
    known = found & in_range & masks[pos, np.clip(yo, 0, _YEARS - 1)]
    flag_sub = person & ~known

    # --- unified social credit codes (only where not a person)
    lut = np.full(256, -1, dtype=np.int64)
    for i, c in enumerate(_USCC_ALPHABET):
        lut[ord(c)] = i
    vals = lut[chars]
    u_fmt = is_digit[:, :8].all(axis=1) & (vals[:, 8:] >= 0).all(axis=1)
    u_total = (np.where(vals[:, :17] < 0, 0, vals[:, :17]) * np.asarray(_USCC_WEIGHTS)).sum(axis=1)
    u_ok = u_fmt & (vals[:, 17] == (31 - u_total % 31) % 31)
    body = chars[:, 8:16].astype(np.int64)
    bval = np.where(body <= 57, body - 48, body - 55)
    o_total = (bval * np.asarray(_ORG_WEIGHTS, dtype=np.int64)).sum(axis=1)
    o_check = 11 - o_total % 11
    o_char = np.where(o_check == 10, ord("X"), np.where(o_check == 11, ord("0"), o_check + 48))
    u_ok &= chars[:, 16] == o_char
    kind_sub = np.where((kind_sub == 0) & u_ok, 2, kind_sub).astype(np.int8)

    kind[idx] = kind_sub
    birth[idx] = np.where(person, born, np.datetime64("NaT"))
    flag[idx] = flag_sub
    return {"kind": kind, "birth": birth, "flag": flag}
