"""Console forms answer bad bytes and absurd numbers with a 4xx, never a 500."""

from __future__ import annotations

import re

import httpx

from tests.console.conftest import ADMIN_KEY, MerchLive

FORM = {"content-type": "application/x-www-form-urlencoded"}


def test_invalid_utf8_in_the_unauthenticated_login_is_400(merch_live: MerchLive) -> None:
    with httpx.Client(base_url=merch_live.url, timeout=60.0) as browser:
        for body in (b"key=\xff\xfe", b"key=%FF%FE"):
            r = browser.post("/console/login", content=body, headers=FORM)
            assert r.status_code == 400, r.text
            assert "UTF-8" in r.json()["message"]


def test_non_ascii_csrf_token_and_huge_duration(merch_live: MerchLive) -> None:
    with httpx.Client(base_url=merch_live.url, timeout=60.0) as browser:
        assert browser.post("/console/login", data={"key": ADMIN_KEY}).status_code == 303
        r = browser.post("/console/rules/save", data={"csrf_token": "令牌", "name": "x"})
        assert r.status_code == 403, r.text
        html = browser.get("/console/rules/new").text
        token = re.findall(r'name="csrf_token" value="([0-9a-f]{64})"', html)[0]
        form = {"csrf_token": token, "name": "forever", "context": "feed", "action": "bury",
                "brand": "x", "duration_days": "1e400"}
        r = browser.post("/console/rules/save", data=form)
        assert r.status_code == 400, r.text[:500]
        assert "duration_days" in r.text
        r = browser.post("/console/rules/preview", data=form)
        assert r.status_code == 400, r.text[:500]
        assert "duration_days" in r.text
