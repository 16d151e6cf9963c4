from __future__ import annotations

import random
from datetime import date

import pytest
from stdnum.cn import ric, uscc

from conftest import make_person_id, make_uscc, org_check, ric_check, uscc_check
from xinyong.catalog.identifiers import (
    ADDRESS_CODE_UNKNOWN,
    InvalidIdentifier,
    classify_ids,
    org_code_check_char,
    parse_person_id,
    parse_subject_id,
)


def test_published_examples() -> None:
    # GB 11643-1999 sample and python-stdnum's doctest examples
    sid = parse_subject_id("11010519491231002X")
    assert (sid.kind, sid.birth_date, sid.flags) == ("person", date(1949, 12, 31), ())
    assert parse_subject_id("360426199101010071").birth_date == date(1991, 1, 1)
    org = parse_subject_id("91110000600037341L")
    assert (org.kind, org.birth_date) == ("organization", None)


def test_lower_case_x_and_whitespace_are_normalised() -> None:
    assert parse_subject_id(" 11010519491231002x ").value == "11010519491231002X"


def test_person_ids_from_the_definition() -> None:
    pid = make_person_id(date(2000, 2, 29), 7)
    assert pid[-1] == ric_check(pid[:17])
    sid = parse_subject_id(pid)
    assert sid.kind == "person" and sid.birth_date == date(2000, 2, 29) and sid.flags == ()
    assert parse_person_id(pid) == sid


def test_wrong_check_character() -> None:
    pid = make_person_id()
    bad = pid[:17] + ("0" if pid[17] != "0" else "1")
    with pytest.raises(InvalidIdentifier, match="check character"):
        parse_subject_id(bad)


@pytest.mark.parametrize("text", ["", "123", "1101051949123100", "11010519491231002XX"])
def test_wrong_length(text: str) -> None:
    with pytest.raises(InvalidIdentifier, match="18 characters"):
        parse_subject_id(text)


def test_impossible_birth_date() -> None:
    first = "37108219900230123"  # 30 February
    with pytest.raises(InvalidIdentifier, match="birth date"):
        parse_subject_id(first + ric_check(first))


def test_unknown_address_code_is_accepted_and_flagged() -> None:
    # 110199: not a county code python-stdnum knows (it even raises KeyError)
    pid = make_person_id(date(1990, 1, 1), 123, address="110199")
    assert not _stdnum_accepts(pid)
    sid = parse_subject_id(pid)
    assert sid.kind == "person" and sid.flags == (ADDRESS_CODE_UNKNOWN,)
    # 110103 (Chongwen district) exists until 2010: first issue there later is unknown to stdnum
    assert parse_subject_id(make_person_id(date(1990, 1, 1), address="110103")).flags == ()
    late = parse_subject_id(make_person_id(date(2015, 1, 1), address="110103"))
    assert late.flags == (ADDRESS_CODE_UNKNOWN,)


def _stdnum_accepts(pid: str) -> bool:
    try:
        return ric.is_valid(pid)
    except KeyError:  # python-stdnum: unknown county of a known province
        return False


def test_organization_code_check() -> None:
    # GB 11714 worked example embedded in stdnum's doctest: 60003734-1
    assert org_code_check_char("60003734") == "1"
    assert org_code_check_char("MA3C4B5D") == org_check("MA3C4B5D")
    code = make_uscc()
    assert parse_subject_id(code).kind == "organization"
    assert parse_subject_id(code.lower()).value == code


def test_uscc_with_bad_embedded_org_code_is_rejected() -> None:
    body = "60003734"
    wrong = "2" if org_check(body) != "2" else "3"
    first17 = "91110000" + body + wrong
    code = first17 + uscc_check(first17)
    assert uscc.is_valid(code)  # python-stdnum alone accepts it
    with pytest.raises(InvalidIdentifier, match="organization code"):
        parse_subject_id(code)


def test_uscc_wrong_check_character() -> None:
    with pytest.raises(InvalidIdentifier, match="check character"):
        parse_subject_id("91110000600037341A")


def test_organization_is_not_a_person_id() -> None:
    with pytest.raises(InvalidIdentifier, match="not a resident identity number"):
        parse_person_id(make_uscc())


def test_vectorized_path_agrees_with_reference() -> None:
    rng = random.Random(3)
    values: list[str] = []
    for _ in range(400):
        pid = make_person_id(
            date(rng.randint(1930, 2020), rng.randint(1, 12), rng.randint(1, 28)),
            rng.randint(0, 999),
            address=rng.choice(["371082", "110103", "110199", "360426", "999999"]),
        )
        values.append(pid)
        values.append(pid[:17] + rng.choice("0123456789X"))
        values.append(pid[:10] + rng.choice(["02", "13", "00"]) + pid[12:])
        body = "".join(rng.choice("0123456789ABCDEFGHJKLMNPQRTUWXY") for _ in range(8))
        values.append(make_uscc(body))
        code = make_uscc(body)
        values.append(code[:16] + rng.choice("0123456789X") + code[17])
    values += ["", "abc", "中" * 18, "中国" * 6]
    res = classify_ids(values)
    for i, value in enumerate(values):
        try:
            sid = parse_subject_id(value)
        except InvalidIdentifier:
            assert res["kind"][i] == 0, value
            continue
        assert res["kind"][i] == (1 if sid.kind == "person" else 2), value
        assert bool(res["flag"][i]) == (ADDRESS_CODE_UNKNOWN in sid.flags), value
        if sid.birth_date:
            assert res["birth"][i] == sid.birth_date
