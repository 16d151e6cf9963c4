"""Due process over HTTP (issues 9 and 11): the pages (a subject objects to a record
and adds a statement from the portal, with CSRF; the adjudicator's queue, overdue
first, each case decided on one page), then the API: objections, decisions,
reconsideration, statements and credit repair with the CLI's JSON shapes; bad input
as problem details naming the field (400 malformed, 404 unknown case, 409 the case's
state, 422 the registry's facts); each step only for the roles the matrix names.
The tests share one registry and run in file order."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from web_support import CLEAN, FIRM, LISTED, add_penalty, build_registry
from xinyong.web import create_app

PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, Path, dict]]:
    db, keys = build_registry(tmp_path_factory.mktemp("web-due"))
    keys["firm"] = add_penalty(db)
    with TestClient(create_app(db), raise_server_exceptions=False) as client:
        yield client, db, keys


def auth(keys: dict[str, str], role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {keys[role]}"}


def problem(answer: Any, status: int, field: str | None, text: str) -> None:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == PROBLEM
    body = answer.json()
    assert body["status"] == status and text in body["detail"], body
    if field is not None:
        assert body["errors"][0]["field"] == field, body


def page_client(db: Path, key: str) -> TestClient:
    c = TestClient(create_app(db, secure_cookies=False))
    login = c.get("/login")
    c.post("/login", data={"key": key, "csrf": csrf(login.text), "next": "/"})
    return c


def csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "a form without a CSRF token"
    return found.group(1)


def test_the_portal_files_an_objection_and_the_queue_decides_it(served: Any) -> None:
    """A subject objects to its listing from the portal (SPC Fa Shi [2017] No. 7,
    Art. 11) and sees it marked disputed; the adjudicator finds it in the queue and
    rejects it on its page; a form without its CSRF token writes nothing."""
    _, db, keys = served
    me = page_client(db, keys["subject"])
    portal = me.get("/me?lang=en")
    assert portal.status_code == 200
    assert 'name="record"' in portal.text and '<option value="c1">' in portal.text
    forged = me.post(
        "/me/objections",
        data={"record": "c1", "ground": "not_mine", "statement": "x", "csrf": "forged"},
    )
    assert forged.status_code == 403
    filed = me.post(
        "/me/objections",
        data={"record": "c1", "ground": "should_not_be_listed", "csrf": csrf(portal.text),
              "statement": "I was never a party to this case"},
    )  # fmt: skip
    assert filed.status_code == 200, filed.text
    oid = re.search(r"Objection (objection-[0-9a-f]+) filed", filed.text)
    assert oid, filed.text
    assert "Disputed" in filed.text and oid.group(1) in filed.text
    said = me.post(
        "/me/statements?lang=zh",
        data={"record": "c1", "text": "I never owed this money", "csrf": csrf(filed.text)},
    )
    assert said.status_code == 200 and "I never owed this money" in said.text
    assert "异议处理中" in said.text  # the dispute mark, in Chinese

    court = page_client(db, keys["adjudicator"])
    queue = court.get("/queue?lang=en")
    assert queue.status_code == 200 and f"/queue/objection/{oid.group(1)}" in queue.text
    # the ground as the adjudicator reads it, in the page's language, not its code
    assert "Should not be listed" in queue.text and "should_not_be_listed" not in queue.text
    assert "不应被列入名单" in court.get(f"/queue/objection/{oid.group(1)}?lang=zh").text
    case = court.get(f"/queue/objection/{oid.group(1)}?lang=en")
    assert oid.group(1) in case.text and 'value="uphold"' in case.text
    # each role's navigation links only the pages it may open
    assert 'href="/queue"' in queue.text and 'href="/desk"' not in queue.text
    assert 'href="/me"' in portal.text and 'href="/queue"' not in portal.text
    assert 'href="/desk"' not in portal.text and 'href="/console"' not in portal.text
    decided = court.post(
        f"/queue/objection/{oid.group(1)}",
        data={"outcome": "reject", "reason": "the case file names the subject",
              "csrf": csrf(case.text)},
    )  # fmt: skip
    assert decided.status_code == 200 and "Decided: rejected." in decided.text
    assert f"/queue/objection/{oid.group(1)}" not in court.get("/queue").text
    # a subject has no queue to decide from
    assert me.get("/queue").status_code == 403


def test_an_objection_rejected_reconsidered_and_upheld_turns_the_check(served: Any) -> None:
    """SPC Fa Shi [2017] No. 7, Arts. 11-12: the listing stays in force while the
    objection is open (the reason marked disputed); upheld on reconsideration the
    entry is void and the flight check allows."""
    client, _, keys = served
    subject, court = auth(keys, "subject"), auth(keys, "adjudicator")
    filed = client.post(
        "/v1/objections",
        json={"subject_id": LISTED, "record_id": "c1", "ground": "should_not_be_listed",
              "statement": "I was never a party to this case"},
        headers=subject,
    )  # fmt: skip
    assert filed.status_code == 201, filed.text
    o = filed.json()
    assert set(o) == {
        "objection_id", "subject_id", "record_id", "system", "ground", "filed_at",
        "review_due", "status",
    }  # fmt: skip
    assert (o["status"], o["system"], o["record_id"]) == ("open", "judicial", "c1")
    oid = o["objection_id"]

    check = client.get(f"/v1/checks/{LISTED}/flight", headers=auth(keys, "service")).json()
    assert check["decision"] == "deny"
    assert check["reasons"][0]["disputed"] is True and check["reasons"][0]["objection_id"] == oid

    late = client.get(
        "/v1/objections", params={"overdue": "true", "at": "2027-06-01"}, headers=court
    ).json()
    assert [(x["objection_id"], x["review_due"], x["overdue"]) for x in late] == [
        (oid, o["review_due"], True)
    ]
    assert client.get("/v1/objections", params={"overdue": "true"}, headers=court).json() == []

    problem(
        client.post(f"/v1/objections/{oid}/decision",
                    json={"decision": "uphold", "reason": "mine"}, headers=subject),
        403, None, "objections.decide",
    )  # fmt: skip
    rejected = client.post(
        f"/v1/objections/{oid}/decision",
        json={"decision": "reject", "reason": "the case file names the subject"},
        headers=court,
    )
    assert rejected.status_code == 200, rejected.text
    assert rejected.json()["status"] == "rejected" and rejected.json()["correction_due"] is None
    problem(
        client.post(f"/v1/objections/{oid}/decision",
                    json={"decision": "uphold", "reason": "again"}, headers=court),
        409, "objection_id", "already decided",
    )  # fmt: skip
    asked = client.post(
        f"/v1/objections/{oid}/reconsideration",
        json={"statement": "the identity number in the case file is not mine"},
        headers=subject,
    )
    assert asked.status_code == 200, asked.text
    assert asked.json()["status"] == "reconsideration"
    upheld = client.post(
        f"/v1/objections/{oid}/decision",
        json={"decision": "uphold", "reason": "another person of the same name"},
        headers=court,
    ).json()
    assert (upheld["status"], upheld["level"]) == ("upheld", 2)
    assert upheld["correction_due"] is not None

    check = client.get(f"/v1/checks/{LISTED}/flight", headers=auth(keys, "service")).json()
    assert check["decision"] == "allow"
    mine = client.get("/v1/objections", params={"subject": LISTED}, headers=subject).json()
    assert {x["objection_id"]: x["status"] for x in mine}[oid] == "upheld"


@pytest.mark.parametrize(
    ("role", "body", "status", "field", "text"),
    [
        ("subject", {"record_id": "nope"}, 422, "record_id", "no record 'nope'"),
        ("subject", {"statement": "  "}, 400, "statement", "must not be empty"),
        ("subject", {"at": "2023-01-01"}, 422, "at", "before record c1 occurred"),
        ("subject", {"at": "2099-01-01"}, 400, "at", "in the future"),
        ("subject", {"ground": "made_up"}, 422, "body.ground", "should_not_be_listed"),
        ("subject", {"subject_id": CLEAN}, 403, None, "objections.file"),
        ("service", {}, 403, None, "objections.file"),
        ("operator", {"subject_id": CLEAN}, 422, "record_id", "is not about"),
    ],
)
def test_bad_objections_are_problems_naming_the_field(
    served: Any, role: str, body: dict[str, str], status: int, field: str | None, text: str
) -> None:
    client, _, keys = served
    before = client.get("/v1/objections", headers=auth(keys, "operator")).json()
    full = {"subject_id": LISTED, "record_id": "c1", "ground": "inaccurate", "statement": "x"}
    answer = client.post("/v1/objections", json=full | body, headers=auth(keys, role))
    problem(answer, status, field, text)
    assert client.get("/v1/objections", headers=auth(keys, "operator")).json() == before


def test_an_unknown_objection_or_repair_is_404(served: Any) -> None:
    client, _, keys = served
    court = auth(keys, "adjudicator")
    problem(
        client.post("/v1/objections/objection-none/decision",
                    json={"decision": "reject", "reason": "x"}, headers=court),
        404, "objection_id", "no objection 'objection-none'",
    )  # fmt: skip
    problem(
        client.post("/v1/repairs/repair-none/decision",
                    json={"decision": "grant", "reason": "x"}, headers=court),
        404, "repair_id", "no repair application",
    )  # fmt: skip


def test_a_statement_is_shown_with_the_record(served: Any) -> None:
    """State Council Order No. 631, Art. 16: the subject's statement on a record is
    shown wherever the record is."""
    client, _, keys = served
    said = client.post(
        "/v1/statements",
        json={"subject_id": FIRM, "record_id": "p1", "text": "The fine was paid in June"},
        headers=auth(keys, "firm"),
    )
    assert said.status_code == 201, said.text
    assert set(said.json()) == {"statement_id", "subject_id", "record_id", "added_at"}
    explained = client.get(
        f"/v1/subjects/{FIRM}/explanation",
        params={"system": "admin_penalty"},
        headers=auth(keys, "firm"),
    ).json()
    rows = [r for s in explained["systems"] for sec in s["report"] for r in sec["records"]]
    rows += [r for s in explained["systems"] for r in s["list_entries"]]
    texts = {
        x["text"]
        for r in rows
        if "p1" in (r.get("record_id"), r.get("entry_record_id"))
        for x in r.get("statements", [])
    }
    assert texts == {"The fine was paid in June"}
    problem(
        client.post("/v1/statements",
                    json={"subject_id": LISTED, "record_id": "p1", "text": "x"},
                    headers=auth(keys, "operator")),
        422, "record_id", "is not about",
    )  # fmt: skip


def test_credit_repair_applied_and_granted_once(served: Any) -> None:
    """NDRC Order No. 36: an ordinary penalty, performed, 3 months published: repair
    with a commitment is granted once; a second application or grant conflicts."""
    client, _, keys = served
    firm, court = auth(keys, "firm"), auth(keys, "adjudicator")
    problem(
        client.post("/v1/repairs",
                    json={"subject_id": FIRM, "record_id": "p1", "commitment": "I comply",
                          "at": "2026-06-01"}, headers=firm),
        422, "record_id", "eligible from 2026-07-15",
    )  # fmt: skip
    applied = client.post(
        "/v1/repairs",
        json={"subject_id": FIRM, "record_id": "p1", "commitment": "We comply with food law"},
        headers=firm,
    )
    assert applied.status_code == 201, applied.text
    r = applied.json()
    assert (r["eligible_from"], r["status"]) == ("2026-07-15", "applied")
    assert {"repair_id", "eligible_from", "status"} <= set(r)
    problem(
        client.post("/v1/repairs",
                    json={"subject_id": FIRM, "record_id": "p1", "commitment": "again"},
                    headers=firm),
        409, "record_id", "already applied",
    )  # fmt: skip
    problem(
        client.post(f"/v1/repairs/{r['repair_id']}/decision",
                    json={"decision": "grant", "reason": "mine"}, headers=firm),
        403, None, "repair.decide",
    )  # fmt: skip
    queue = client.get("/v1/repairs", headers=court).json()
    assert [(x["repair_id"], x["status"]) for x in queue] == [(r["repair_id"], "applied")]
    granted = client.post(
        f"/v1/repairs/{r['repair_id']}/decision",
        json={"decision": "grant", "reason": "conditions met"},
        headers=court,
    ).json()
    assert granted["status"] == "granted"
    problem(
        client.post(f"/v1/repairs/{r['repair_id']}/decision",
                    json={"decision": "refuse", "reason": "again"}, headers=court),
        409, "repair_id", "already decided",
    )  # fmt: skip
    # publication ends with the grant
    found = client.get(
        "/v1/public/search", params={"q": "荣市监罚〔2026〕12号"}, headers=auth(keys, "public")
    ).json()
    assert found["results"] == []


def test_a_subject_reads_only_its_own_cases(served: Any) -> None:
    client, _, keys = served
    subject = auth(keys, "subject")
    for path in ("/v1/objections", "/v1/repairs"):
        problem(client.get(path, headers=subject), 403, None, "only its own data")
        problem(client.get(path, params={"subject": FIRM}, headers=subject), 403, None, "")
        assert client.get(path, params={"subject": LISTED}, headers=subject).status_code == 200
