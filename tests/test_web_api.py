"""The HTTP API (issue 11): API keys, the permission matrix over HTTP, the CLI's
JSON shapes, problem details, records idempotent on record_id, bulk checks."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from test_access import ALLOWED, PUBLIC_DOCS
from web_support import CASE_NO, CLEAN, COURT, LISTED, LISTING, build_registry
from xinyong.access import operations as ops
from xinyong.audit.chain import AuditChain
from xinyong.web import create_app

PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, Path, dict]]:
    db, keys = build_registry(tmp_path_factory.mktemp("web"))
    with TestClient(create_app(db), raise_server_exceptions=False) as client:
        yield client, db, keys


def auth(keys: dict[str, str], role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {keys[role]}"}


def test_health_and_readiness(served: Any) -> None:
    client, _, _ = served
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready" and ready["schema_version"] >= 1


def test_readyz_fails_closed_on_what_is_not_a_registry(tmp_path: Path) -> None:
    not_a_registry = tmp_path / "records.csv"
    not_a_registry.write_text("a,b\n1,2\n")
    for db in (not_a_registry, tmp_path / "missing.duckdb"):
        with TestClient(create_app(db)) as client:
            answer = client.get("/readyz")
            assert answer.status_code == 503
            assert answer.headers["content-type"] == PROBLEM
            assert answer.json()["status"] == 503 and str(db) in answer.json()["detail"]
            assert client.get("/healthz").status_code == 200


def test_openapi_and_docs_are_served_without_a_cdn(served: Any) -> None:
    client, _, _ = served
    spec = client.get("/openapi.json").json()
    assert "/v1/checks/bulk" in spec["paths"] and "/v1/records/bulk" in spec["paths"]
    docs = client.get("/docs").text
    assert "/docs-assets/swagger-ui-bundle.js" in docs and "cdn" not in docs.lower()
    assert client.get("/docs-assets/swagger-ui-bundle.js").status_code == 200


def test_no_key_or_a_bad_key_is_401_and_a_bad_key_is_audited(served: Any) -> None:
    client, db, keys = served
    url = f"/v1/checks/{LISTED}/flight"
    missing = client.get(url)
    assert missing.status_code == 401 and missing.headers["content-type"] == PROBLEM
    assert missing.headers["www-authenticate"].startswith("Bearer")
    forged = keys["service"][:-2] + ("AA" if not keys["service"].endswith("AA") else "BB")
    bad = client.get(url, headers={"X-API-Key": forged})
    assert bad.status_code == 401
    last = list(AuditChain.of_registry(db).entries())[-1]
    assert (last.action, last.outcome) == ("authenticate", "refused")


def test_a_check_has_the_cli_shape_and_is_audited(served: Any) -> None:
    client, db, keys = served
    answer = client.get(f"/v1/checks/{LISTED}/flight", headers=auth(keys, "service")).json()
    assert set(answer) == {"subject_id", "service", "at", "decision", "reasons"}
    assert answer["decision"] == "deny"
    reason = answer["reasons"][0]
    assert reason["list"] == "dishonest_debtors" and "grade" not in reason
    assert "Fa Shi" in reason["legal_basis"] or "SPC" in reason["legal_basis"]
    last = list(AuditChain.of_registry(db).entries())[-1]
    assert (last.principal, last.action, last.subject) == ("t-service", "check", LISTED)
    clean = client.get(f"/v1/checks/{CLEAN}/flight", headers=auth(keys, "service")).json()
    assert clean["decision"] == "allow" and clean["reasons"] == []


def test_bulk_checks_answer_each_subject_and_audit_each(served: Any) -> None:
    client, db, keys = served
    before = sum(1 for _ in AuditChain.of_registry(db).entries())
    body = {"service": "flight", "subjects": [LISTED, CLEAN] * 50}
    answer = client.post("/v1/checks/bulk", json=body, headers=auth(keys, "service")).json()
    assert answer["count"] == 100 and answer["decisions"] == {"deny": 50, "allow": 50}
    assert answer["answers"][0]["decision"] == "deny"
    chain = AuditChain.of_registry(db)
    assert sum(1 for _ in chain.entries()) == before + 100
    assert chain.verify().ok
    # a service not among the principal's services is refused, whole
    other = client.post(
        "/v1/checks/bulk",
        json={"service": "hotel.star_rated", "subjects": [CLEAN]},
        headers=auth(keys, "service"),
    )
    assert other.status_code == 403 and other.json()["permission"] == "check:hotel.star_rated"
    bad = client.post(
        "/v1/checks/bulk",
        json={"service": "flight", "subjects": [CLEAN, "12345"]},
        headers=auth(keys, "service"),
    )
    assert bad.status_code == 400 and "subjects[1]" in bad.json()["detail"]
    too_many = client.post(
        "/v1/checks/bulk",
        json={"service": "flight", "subjects": [CLEAN] * 100_001},
        headers=auth(keys, "service"),
    )
    assert too_many.status_code == 422
    assert too_many.json()["errors"][0]["field"] == "body.subjects"


def test_bad_input_is_a_problem_naming_the_field_never_a_500(served: Any) -> None:
    client, _, keys = served
    h = auth(keys, "service")
    cases = {
        "/v1/checks/12345/flight": (400, "12345"),
        f"/v1/checks/{LISTED}/flight?at=notadate": (400, "at:"),
        f"/v1/checks/{LISTED}/flight?known_at=2199-01-01": (400, "known_at"),
    }
    for url, (status, named) in cases.items():
        answer = client.get(url, headers=h)
        assert answer.status_code == status, (url, answer.text)
        assert answer.headers["content-type"] == PROBLEM
        assert named in answer.json()["detail"]
    unknown = client.get(f"/v1/checks/{LISTED}/no.such.service", headers=auth(keys, "operator"))
    assert unknown.status_code == 404 and "unknown service" in unknown.json()["detail"]
    shapeless = client.post("/v1/checks/bulk", content=b"{not json", headers=h)
    assert shapeless.status_code == 422 and shapeless.headers["content-type"] == PROBLEM


def _request(client: TestClient, h: dict[str, str], action: str) -> Any:
    """One request per action of the matrix (cheap ones; explain and report are
    tested once below)."""
    subject = LISTED
    if action == "check":
        return client.get(f"/v1/checks/{subject}/flight", headers=h)
    if action == "score":
        return client.get(f"/v1/subjects/{subject}/score?system=judicial&case=c-1", headers=h)
    if action == "packs.read":
        return client.get("/v1/packs", headers=h)
    if action == "statistics":
        return client.get("/v1/statistics?start=2024-01-01&end=2025-01-01", headers=h)
    if action == "audit.verify":
        return client.get("/v1/audit/verify", headers=h)
    if action == "audit.read":
        return client.get(f"/v1/subjects/{subject}/audit?case=c-1", headers=h)
    if action == "public.search":
        return client.get("/v1/public/search?q=x", headers=h)
    if action == "sources.manage":
        return client.get("/v1/sources", headers=h)
    if action == "principals.manage":
        return client.get("/v1/principals", headers=h)
    if action == "evaluate":
        return client.get("/v1/runs", headers=h)
    if action == "import":  # a record already held: a duplicate, nothing written
        return client.post(
            "/v1/records",
            json=LISTING,
            headers=h,
        )
    if action == "purge":
        return client.post("/v1/purge?dry_run=true", headers=h)
    raise AssertionError(action)


MATRIX_ACTIONS = (
    "check", "score", "packs.read", "statistics", "audit.verify", "audit.read",
    "public.search", "sources.manage", "principals.manage", "evaluate", "import", "purge",
)  # fmt: skip


@pytest.mark.parametrize("action", MATRIX_ACTIONS)
def test_the_permission_matrix_over_http(served: Any, action: str) -> None:
    """Every role against each action, from test_access's table (written from issue 10)."""
    client, _, keys = served
    for role in keys:
        answer = _request(client, auth(keys, role), action)
        allowed = action in ALLOWED[role] or action in PUBLIC_DOCS
        if allowed:
            assert answer.status_code < 300, (role, action, answer.text)
        else:
            assert answer.status_code == 403, (role, action, answer.text)
            assert answer.headers["content-type"] == PROBLEM
            assert answer.json()["permission"].startswith(action)


def test_inquiries_need_consent_and_an_allowed_purpose(served: Any) -> None:
    """PBoC Order 631 Art. 18: a lender reads a report only with the subject's consent
    and for an allowed purpose; each refusal is a 403 naming what is missing."""
    client, db, keys = served
    h = auth(keys, "service")  # a lender: bound to lender:bank-a
    url = f"/v1/subjects/{CLEAN}/inquiries"
    wrong = client.post(url, json={"purpose": "marketing"}, headers=h)
    assert wrong.status_code == 403 and wrong.json()["permission"] == "inquire:purpose:marketing"
    unconsented = client.post(url, json={"purpose": "loan_approval"}, headers=h)
    assert unconsented.status_code == 403
    assert unconsented.json()["permission"] == "inquire:consent"
    last = list(AuditChain.of_registry(db).entries())[-1]
    assert (last.action, last.outcome, last.subject) == ("inquire", "refused", CLEAN)
    assert last.purpose == "loan_approval"


def test_public_search_shows_only_masked_identifiers(served: Any) -> None:
    client, _, keys = served
    answer = client.get(f"/v1/public/search?q={CASE_NO}", headers=auth(keys, "public"))
    assert answer.status_code == 200
    text = answer.text
    assert LISTED not in text  # never the full identity number
    assert "results" in answer.json()


def test_serve_refuses_what_is_not_a_registry(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from xinyong.cli import _register, app

    _register()
    fake = tmp_path / "x.duckdb"
    fake.write_text("not a registry")
    result = CliRunner().invoke(app, ["serve", "--db", str(fake)])
    assert result.exit_code == 1
    missing = CliRunner().invoke(app, ["serve", "--db", str(tmp_path / "none.duckdb")])
    assert missing.exit_code == 1 and "no registry" in missing.output


def test_audit_entries_written_in_bulk_keep_the_chain(tmp_path: Path) -> None:
    chain = AuditChain(tmp_path / "r.duckdb.audit.jsonl")
    chain.append(principal="a", role="operator", action="x", outcome="done")
    event = {
        "principal": "s",
        "role": "service",
        "action": "check",
        "outcome": "allowed",
        "subject": LISTED,
        "detail": {"service": "flight", "note": '引号"q\\'},
    }
    assert chain.append_many([event] * 5) == 5
    chain.append(principal="a", role="operator", action="y", outcome="done")
    report = chain.verify()
    assert report.ok and report.entries == 7
    entries = list(chain.entries())
    assert [e.seq for e in entries] == list(range(1, 8))
    assert entries[3].detail["note"] == '引号"q\\' and entries[3].subject == LISTED
    # the chain catches a change to an entry written in bulk
    lines = chain.path.read_text(encoding="utf-8").splitlines()
    lines[2] = lines[2].replace("flight", "train")
    chain.path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert chain.verify().first_bad == 3


def test_demo_keys_give_one_principal_per_role_and_fresh_keys(tmp_path: Path) -> None:
    from xinyong.cli.serve import _a_listed_subject, demo_keys

    db, _ = build_registry(tmp_path)
    subject = _a_listed_subject(db)
    assert subject == LISTED
    first = demo_keys(db, subject)
    assert {role for _, role, _ in first} == {
        "operator", "public", "auditor", "regulator", "adjudicator", "service", "subject",
    }  # fmt: skip
    again = dict((name, key) for name, _, key in demo_keys(db, subject))
    reg = ops.Registry(db)
    for name, _, key in first:
        assert again[name] != key  # a fresh key each time the server starts
        assert ops.authenticate(reg, None, again[name]).name == name


# -- tests that write (they end the materialized run's currency: keep them last) --


def test_a_write_after_held_reads_and_reads_after_it(served: Any) -> None:
    """Readers hold read-only stores; a write closes them first, reads reopen after."""
    client, _, keys = served
    for _ in range(3):
        assert client.get(f"/v1/checks/{CLEAN}/flight", headers=auth(keys, "service")).is_success
    run = client.get("/v1/runs", headers=auth(keys, "operator"))
    assert run.is_success
    added = client.post(
        "/v1/sources",
        json={"source_id": "city:rongcheng-test", "kind": "city"},
        headers=auth(keys, "operator"),
    )
    assert added.status_code == 201
    sources = client.get("/v1/sources", headers=auth(keys, "operator")).json()
    assert "city:rongcheng-test" in {s["source_id"] for s in sources}


def test_a_subject_reads_only_its_own_report_and_gets_the_pdf(served: Any) -> None:
    client, _, keys = served
    h = auth(keys, "subject")
    other = client.get(f"/v1/subjects/{CLEAN}/report?format=json", headers=h)
    assert other.status_code == 403 and other.json()["permission"] == "report:other-subject"
    explained = client.get(f"/v1/subjects/{LISTED}/explanation?system=judicial", headers=h)
    assert explained.status_code == 200
    judicial = explained.json()["systems"][0]
    assert judicial["system"] == "judicial" and judicial["list_entries"][0]["active"]
    pdf = client.get(f"/v1/subjects/{LISTED}/report?format=pdf", headers=h)
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF")


def test_records_are_idempotent_on_record_id_and_rejects_name_the_field(served: Any) -> None:
    client, _, keys = served
    h = auth(keys, "source")
    record = {
        "record_id": "web-1",
        "subject_id": CLEAN,
        "type": "court.listing_decision",
        "occurred_at": "2025-03-01",
        "source": COURT,
        "attributes": {"case_no": "(2025)鲁1082执7号", "ground": "evades_enforcement"},
    }
    first = client.post("/v1/records", json=record, headers=h)
    assert first.status_code == 201, first.text
    assert first.json()["accepted"] == 1
    again = client.post("/v1/records", json=record, headers=h)
    assert again.status_code == 200 and again.json()["duplicates"] == 1
    wrong = client.post(
        "/v1/records",
        json={**record, "record_id": "web-2", "attributes": {"ground": "bogus", "case_no": "x"}},
        headers=h,
    )
    assert wrong.status_code == 422
    assert wrong.json()["errors"][0]["field"] == "attributes.ground"
    # bulk: NDJSON in, streamed NDJSON out: one line per reject, then the result
    lines = [
        json.dumps({**record, "record_id": f"web-b{i}", "occurred_at": f"2025-04-{i + 1:02d}"})
        for i in range(3)
    ] + [json.dumps({**record, "record_id": "web-bad", "subject_id": "123"}), json.dumps(record)]
    bulk = client.post(
        "/v1/records/bulk",
        content=("\n".join(lines) + "\n").encode(),
        headers={**h, "Content-Type": "application/x-ndjson"},
    )
    assert bulk.headers["content-type"].startswith("application/x-ndjson")
    out = [json.loads(x) for x in bulk.text.splitlines()]
    assert out[0]["batch"]["accepted"] == 3 and out[0]["batch"]["rows"] == 5
    assert out[1]["reject"]["record_id"] == "web-bad" and out[1]["reject"]["field"] == "subject_id"
    assert out[-1] == {"accepted": 3, "duplicates": 1, "rejected": 1, "rejects_file": None}
    # a refusal comes before anything is streamed: a problem, not a 200
    public = client.post(
        "/v1/records/bulk",
        content=("\n".join(lines) + "\n").encode(),
        headers={**auth(keys, "public"), "Content-Type": "application/x-ndjson"},
    )
    assert public.status_code == 403 and public.headers["content-type"] == PROBLEM
    # a source submits only its own records
    foreign = client.post("/v1/records", json={**record, "source": "lender:bank-a"}, headers=h)
    assert foreign.status_code == 403 and foreign.json()["permission"] == "import:other-source"


def test_compaction_over_http(served: Any) -> None:
    """POST /v1/compact: an operator's maintenance (the `evaluate` permission); a
    service is refused; the check answers as before."""
    client, _, keys = served
    url = f"/v1/checks/{LISTED}/flight?at=2026-06-01"
    before = client.get(url, headers=auth(keys, "service")).json()
    refused = client.post("/v1/compact", headers=auth(keys, "service"))
    assert refused.status_code == 403 and refused.json()["permission"] == "evaluate"
    done = client.post("/v1/compact", headers=auth(keys, "operator"))
    assert done.status_code == 200, done.text
    assert done.json()["records"] >= 1
    after = client.get(url, headers=auth(keys, "service")).json()
    assert after == before and after["decision"] == "deny"
