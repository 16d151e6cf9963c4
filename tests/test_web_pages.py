"""The pages (issue 11): both languages, the catalogs current and complete, login
with a key into a session cookie, CSRF on forms, each role's page."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po
from fastapi.testclient import TestClient

from web_support import CASE_NO, LISTED, build_registry
from xinyong.web import create_app
from xinyong.web.i18n import LOCALE_DIR

WEB = Path(__file__).resolve().parents[1] / "src" / "xinyong" / "web"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, str]]]:
    yield build_registry(tmp_path_factory.mktemp("pages"))


def client(site: Any) -> TestClient:
    db, _ = site
    return TestClient(create_app(db, secure_cookies=False))


def csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "a form without a CSRF token"
    return found.group(1)


def login(c: TestClient, key: str) -> Any:
    page = c.get("/login")
    return c.post("/login", data={"key": key, "csrf": csrf(page.text), "next": "/"})


def test_every_message_has_its_chinese_translation_and_the_mo_is_current() -> None:
    ids = {
        msg
        for _, _, msg, _, _ in extract_from_dir(
            str(WEB / "templates"),
            method_map=[("**.j2", "jinja2")],
            options_map={"**.j2": {"extensions": "jinja2.ext.i18n"}},
        )
    }
    po_path = LOCALE_DIR / "zh" / "LC_MESSAGES" / "messages.po"
    with po_path.open("rb") as fh:
        po = read_po(fh)
    with po_path.with_suffix(".mo").open("rb") as fh:
        mo = read_mo(fh)
    missing = sorted(i for i in ids if not (po.get(i) and po.get(i).string))  # type: ignore[union-attr]
    assert not missing, f"untranslated: {missing}"
    stale = sorted(i for i in ids if not (mo.get(i) and mo.get(i).string == po.get(i).string))  # type: ignore[union-attr]
    assert not stale, f"messages.mo is stale (run xinyong.web.i18n.compile_catalogs): {stale}"


def test_language_from_the_query_or_accept_language(site: Any) -> None:
    c = client(site)
    assert 'lang="zh-Hans"' in c.get("/", headers={"Accept-Language": "zh-CN,zh;q=0.9"}).text
    english = c.get("/?lang=en").text
    assert 'lang="en"' in english and "Public list search" in english
    chinese = c.get("/public?lang=zh").text
    assert "公开名单查询" in chinese
    assert "公开名单查询" in c.get("/").text  # the session remembers the choice


def test_public_search_needs_no_key_and_masks_identifiers(site: Any) -> None:
    c = client(site)
    page = c.get("/public", params={"q": CASE_NO, "lang": "en"})
    assert page.status_code == 200
    assert CASE_NO in page.text and LISTED not in page.text
    assert LISTED[:6] + "********" in page.text


def test_login_with_a_key_and_a_bad_key_is_refused(site: Any) -> None:
    _, keys = site
    c = client(site)
    bad = login(c, "xy.nothing.here")
    assert bad.status_code == 401 and "not accepted" in bad.text
    ok = login(c, keys["subject"])
    assert ok.status_code == 200 and str(ok.url).endswith("/me")
    cookie = ok.history[0].headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie


def test_secure_cookies_by_default(site: Any) -> None:
    db, keys = site
    c = TestClient(create_app(db), base_url="https://testserver")
    page = c.get("/login")
    answer = c.post(
        "/login",
        data={"key": keys["public"], "csrf": csrf(page.text)},
        follow_redirects=False,
    )
    assert "secure" in answer.headers["set-cookie"].lower()


def test_login_sends_only_to_paths_of_this_site(site: Any) -> None:
    _, keys = site
    c = client(site)
    for target in ("//evil.example", "/\\evil.example", "https://evil.example"):
        page = c.get("/login", params={"next": target})
        answer = c.post(
            "/login",
            data={"key": keys["public"], "csrf": csrf(page.text), "next": target},
            follow_redirects=False,
        )
        assert answer.status_code == 303 and answer.headers["location"] == "/public"


def test_a_form_without_its_csrf_token_is_refused(site: Any) -> None:
    _, keys = site
    c = client(site)
    login(c, keys["service"])
    forged = c.post("/desk", data={"subject": LISTED, "service": "flight", "csrf": "guess"})
    assert forged.status_code == 403
    assert "CSRF" in forged.text


def test_service_desk_shows_the_decision_and_its_reasons(site: Any) -> None:
    _, keys = site
    c = client(site)
    desk = login(c, keys["service"])
    assert str(desk.url).endswith("/desk")
    answer = c.post(
        "/desk",
        data={"subject": LISTED, "service": "flight", "csrf": csrf(desk.text), "lang": "en"},
    )
    assert answer.status_code == 200
    assert 'id="decision">Deny' in answer.text or 'id="decision">拒绝' in answer.text
    assert "dishonest_debtors" in answer.text and "restrict.flight" in answer.text


def test_subject_portal_shows_who_looked(site: Any) -> None:
    _, keys = site
    desk = client(site)
    form = login(desk, keys["service"])
    desk.post("/desk", data={"subject": LISTED, "service": "flight", "csrf": csrf(form.text)})
    c = client(site)
    portal = login(c, keys["subject"])
    assert "t-service" in portal.text and "check (flight)" in portal.text
    # the report is a recorded own read: only with the form's token (the browser test
    # downloads the PDF)
    forged = c.post("/me/report", data={"csrf": "guess", "format": "pdf"})
    assert forged.status_code == 403


def test_operator_console_packs_lint_diff_and_statistics(site: Any) -> None:
    _, keys = site
    c = client(site)
    console = login(c, keys["operator"])
    assert str(console.url).endswith("/console")
    for system in ("judicial", "rongcheng", "financial", "commercial"):
        assert f"/console/packs/{system}" in console.text
    pack = c.get("/console/packs/rongcheng")
    assert "illustrative" in pack.text  # the linter's warnings are shown
    same = c.get("/console/packs/judicial", params={"against": "2017.1", "lang": "en"})
    assert "identical" in same.text
    stats = c.get("/console/statistics")
    assert stats.status_code == 200 and "<svg" in stats.text


def test_a_role_without_the_permission_sees_a_refusal_page(site: Any) -> None:
    _, keys = site
    c = client(site)
    login(c, keys["public"])
    refused = c.get("/console/statistics")
    assert refused.status_code == 403
    assert "statistics" in refused.text


def test_a_new_pack_version_installed_over_http_and_its_diff(site: Any) -> None:
    """Last in the module: installing a version ends the run's currency."""
    from xinyong.packs import shipped_pack_paths

    db, keys = site
    text = next(p for p in shipped_pack_paths() if p.name == "judicial.yaml").read_text("utf-8")
    newer = text.replace('version: "2017.1"', 'version: "2099.1"').replace(
        "effective_from: 2017-05-01", "effective_from: 2099-01-01"
    )
    api = TestClient(create_app(db, secure_cookies=False))
    h = {"Authorization": f"Bearer {keys['operator']}", "Content-Type": "application/yaml"}
    first = api.post("/v1/packs", content=newer.encode(), headers=h)
    assert first.status_code == 201, first.text
    assert first.json() == {
        "system": "judicial",
        "version": "2099.1",
        "effective_from": "2099-01-01",
        "installed": True,
    }
    again = api.post("/v1/packs", content=newer.encode(), headers=h)
    assert again.status_code == 200 and again.json()["installed"] is False
    public = api.post(
        "/v1/packs",
        content=newer.encode(),
        headers={**h, "Authorization": f"Bearer {keys['public']}"},
    )
    assert public.status_code == 403 and public.json()["permission"] == "packs.install"
    c = client(site)
    login(c, keys["operator"])
    diff = c.get("/console/packs/judicial", params={"against": "2017.1", "version": "2099.1"})
    assert '<span class="del">-  version: &#34;2017.1&#34;</span>' in diff.text
    assert '<span class="add">+  effective_from: 2099-01-01</span>' in diff.text
