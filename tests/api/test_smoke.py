from __future__ import annotations

import httpx

from tests.conftest import Keys, auth

EVENT = {
    "event": "purchase",
    "correlationKey": "_id",
    "correlationValue": "FBBBCB26-B75E-4342-B40B-568BF879F7C5",
    "source": "mobile",
    "uuid": "F451DF0A-D713-4076-AE20-41AB1641BC98",
}


async def test_an_accepted_event_can_be_read_back(client: httpx.AsyncClient, keys: Keys) -> None:
    sent = await client.post(
        "/api/events/batch/", json={"batch": [EVENT]}, headers=auth(keys.write)
    )

    read = await client.get(f"/api/events/{EVENT['uuid']}", headers=auth(keys.admin))

    assert sent.status_code == 201, sent.text
    assert sent.json() == {"accepted": 1, "duplicates": 0, "rejected": 0, "errors": []}
    assert read.status_code == 200
    assert read.json()["uuid"] == EVENT["uuid"].lower()
    assert read.json()["event"] == "purchase"
