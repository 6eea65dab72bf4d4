"""`/docs` and `/redoc` render the API's operations in a browser with no network at all: their
scripts and styles come from the package, not a CDN."""

PREDICT = "/predict/{task_id}"


def test_swagger_ui_renders_the_operations_offline(served_app: str, browser_page) -> None:
    page = browser_page.page
    page.goto(f"{served_app}/docs")
    page.wait_for_selector(".opblock-summary-path", timeout=30_000)
    paths = page.locator(".opblock-summary-path").all_inner_texts()
    assert PREDICT in [path.replace("\u200b", "") for path in paths]
    assert "/tasks" in [path.replace("\u200b", "") for path in paths]
    assert browser_page.blocked_requests == []
    assert browser_page.console_errors == []


def test_redoc_renders_the_operations_offline(served_app: str, browser_page) -> None:
    page = browser_page.page
    page.goto(f"{served_app}/redoc")
    page.wait_for_selector("[data-section-id^='tag/predict']", timeout=30_000)
    assert PREDICT in page.inner_text("body")
    assert browser_page.blocked_requests == []
    assert browser_page.console_errors == []
