"""benchmarks/RESULTS.md is what its generator renders from the records in the repository."""

from benchmarks import results_page


def test_results_md_is_up_to_date_with_the_records() -> None:
    rendered = results_page.render()
    assert results_page.RESULTS_PAGE.read_text(encoding="utf-8") == rendered, (
        "benchmarks/RESULTS.md is stale: run `python -m benchmarks.results_page`"
    )


def test_the_check_command_fails_on_a_stale_page(tmp_path) -> None:
    page = tmp_path / "RESULTS.md"
    page.write_text("# an old page\n", encoding="utf-8")
    assert results_page.main(["--out", str(page), "--check"]) == 1
    assert results_page.main(["--out", str(page)]) == 0
    assert results_page.main(["--out", str(page), "--check"]) == 0
