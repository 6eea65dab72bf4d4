"""The dashboard as files: the page's security and cache headers, assets under a content digest,
every script a module from this server, the files shipped as package data, and no key in any
log line while it is used."""

import logging
import re
import tomllib
from pathlib import Path

from service.dashboard.pages import CONTENT_SECURITY_POLICY, STATIC, asset_digest

REPO = Path(__file__).resolve().parents[2]
IMPORT = re.compile(r"""^import\s.*?from\s+"(\.[^"]+)";""", re.MULTILINE | re.DOTALL)


def test_the_page_is_served_with_a_strict_policy_and_no_cache(api) -> None:
    response = api.client.get("/dashboard")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "script-src 'self'" in CONTENT_SECURITY_POLICY
    assert "form-action 'none'" in CONTENT_SECURITY_POLICY
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"
    html = response.text
    assert "{{" not in html
    assert f"dashboard/static/{asset_digest()}/js/app.js" in html
    # No inline script or style (the policy would refuse them) and nothing from another host.
    assert re.findall(r"<script\b[^>]*>", html) == [
        f'<script type="module" src="dashboard/static/{asset_digest()}/js/app.js">'
    ]
    assert "style=" not in html and "<style" not in html
    assert not re.search(r"https?://", html)


def test_assets_are_cached_for_good_under_their_digest(api) -> None:
    url = f"/dashboard/static/{asset_digest()}/js/app.js"
    response = api.client.get(url)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/javascript")
    assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert response.headers["x-content-type-options"] == "nosniff"
    again = api.client.get(url, headers={"If-None-Match": response.headers["etag"]})
    assert again.status_code == 304
    css = api.client.get(f"/dashboard/static/{asset_digest()}/dashboard.css")
    assert css.headers["content-type"].startswith("text/css")


def test_another_digest_or_a_path_outside_the_assets_is_a_404(api) -> None:
    for url in (
        "/dashboard/static/000000000000/js/app.js",
        f"/dashboard/static/{asset_digest()}/../pages.py",
        f"/dashboard/static/{asset_digest()}/js/missing.js",
    ):
        response = api.client.get(url)
        assert response.status_code == 404, url


def test_the_trailing_slash_redirects_relative_to_the_page(api) -> None:
    response = api.client.get("/dashboard/", follow_redirects=False)
    assert response.status_code == 308
    assert response.headers["location"] == "../dashboard"


def test_the_digest_changes_with_any_asset(tmp_path: Path) -> None:
    (tmp_path / "js").mkdir()
    (tmp_path / "js" / "a.js").write_text("export const a = 1;\n")
    before = asset_digest(tmp_path)
    (tmp_path / "js" / "a.js").write_text("export const a = 2;\n")
    assert asset_digest.__wrapped__(tmp_path) != before


def test_every_module_import_resolves_to_a_shipped_file() -> None:
    scripts = sorted(STATIC.rglob("*.js"))
    assert len(scripts) >= 8
    for script in scripts:
        text = script.read_text(encoding="utf-8")
        assert "innerHTML" not in text, f"{script.name} builds HTML from strings"
        assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", text), script.name
        for target in IMPORT.findall(text):
            assert (script.parent / target).resolve().is_file(), f"{script.name}: {target}"


def test_the_assets_are_package_data() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = pyproject["tool"]["setuptools"]["package-data"]["service.dashboard"]
    package = STATIC.parent
    covered = {path for pattern in patterns for path in package.glob(pattern) if path.is_file()}
    assert covered == {path for path in STATIC.rglob("*") if path.is_file()}


def test_no_log_line_carries_the_key(api, caplog) -> None:
    """Keys travel only in the Authorization header; the access log records method, route,
    path, status and tenant id, never a header."""
    tenant = api.tenant()
    secret = tenant["Authorization"].removeprefix("Bearer ")
    caplog.set_level(logging.DEBUG)
    api.client.get("/dashboard")
    api.client.get("/tasks?limit=1", headers=tenant)
    api.client.get("/tasks/tsk_missing", headers=tenant)
    api.client.post("/tasks", json={"name": ""}, headers=tenant)
    api.client.get("/jobs/job_missing/events", headers={**tenant, "Accept": "text/event-stream"})
    api.client.get("/admin/serving", headers=api.admin)
    access = [r for r in caplog.records if r.name == "service.access"]
    assert len(access) >= 6
    for record in caplog.records:
        assert secret not in record.getMessage()
        assert all(secret not in str(value) for value in vars(record).values())
        assert "test-admin-token" not in str(vars(record))
