"""Issue 13: `xinyong serve --workers N` on one PostgreSQL registry. Each worker asks
the database for the latest evaluation run (and the last batch, the last installed
pack) before it answers from what it holds, so a check through the HTTP API
reflects an evaluation another process has just finished. Real server processes,
a real PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from conftest import make_person_id, pg_database, serving
from xinyong.cli import _register, app
from xinyong.cli.serve import demo_keys

_register()
runner = CliRunner()

DEBTOR = make_person_id(date(1980, 2, 29), 31)
COURT = "court:371082-rongcheng"


def cli(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.stderr
    return result.stdout


def _ok(response: httpx.Response) -> dict:
    assert response.status_code == 200, response.text
    return dict(response.json())


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, str, httpx.Client]]:
    """(registry URL, airline key, client) with two server workers on the registry."""
    with pg_database() as url:
        cli("init", "--db", url)
        cli("sources", "add", COURT, "--kind", "court", "--db", url)
        cli("evaluate", "--as-of", "2024-06-01", "--db", url)  # nothing listed yet
        key = next(k for name, _, k in demo_keys(Path(url)) if name == "demo-airline")
        with serving(url) as client:
            yield url, key, client


def test_a_check_reflects_a_new_evaluation_in_every_worker(
    served: tuple[str, str, httpx.Client], tmp_path: Path
) -> None:
    url, key, client = served
    headers = {"Authorization": f"Bearer {key}"}
    path = f"/v1/checks/{DEBTOR}/flight"
    bulk = {"subjects": [DEBTOR], "service": "flight", "at": "2024-06-01"}

    def decisions() -> set[str]:
        # several requests: the two workers take turns
        single = {
            _ok(client.get(path, params={"at": "2024-06-01"}, headers=headers))["decision"]
            for _ in range(6)
        }
        many = {
            a["decision"]
            for _ in range(6)
            for a in _ok(client.post("/v1/checks/bulk", json=bulk, headers=headers))["answers"]
        }
        return single | many

    assert decisions() == {"allow"}
    records = tmp_path / "listing.jsonl"
    records.write_text(
        json.dumps(
            {
                "record_id": "c2",
                "subject_id": DEBTOR,
                "type": "court.listing_decision",
                "occurred_at": "2024-05-01",
                "source": COURT,
                "attributes": {"case_no": "(2024)鲁1082执200号", "ground": "able_but_refuses"},
            },
            ensure_ascii=False,
        )
    )
    # another process imports and evaluates while the workers keep serving
    cli("import", str(records), "--db", url)
    cli("evaluate", "--as-of", "2024-06-01", "--db", url)
    assert decisions() == {"deny"}
