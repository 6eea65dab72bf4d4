"""Settings: a core and an `expert` group, every variable under its old flat name, and a doc
(docs/configuration.md) that lists exactly the settings there are, with their defaults."""

import re
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import pytest
from pydantic import SecretStr, ValidationError
from pydantic.fields import FieldInfo

from service.settings import EXPERT_NAMES, ExpertSettings, Settings
from tests.processes import REPO
from worker.settings import CelerySettings

CONFIGURATION_DOC = REPO / "docs" / "configuration.md"
CORE_FIELDS = {name: f for name, f in Settings.model_fields.items() if name != "expert"}
WORKER_FIELDS = {
    name: f for name, f in CelerySettings.model_fields.items() if name not in Settings.model_fields
}


def another_value(field: FieldInfo) -> str:
    """A valid value other than the default, as an environment variable would carry it."""
    default = field.default
    if get_origin(field.annotation) is Literal:
        return next(str(choice) for choice in get_args(field.annotation) if choice != default)
    if isinstance(default, bool):
        return str(not default).lower()
    return str(default + 1)


@pytest.mark.parametrize("name", sorted(EXPERT_NAMES))
def test_every_expert_setting_keeps_its_flat_variable(name: str, monkeypatch) -> None:
    field = ExpertSettings.model_fields[name]
    value = another_value(field)
    monkeypatch.setenv(f"LISTSERVE_{name.upper()}", value)
    got = getattr(Settings().expert, name)
    assert got != field.default
    assert str(got).lower() == value or got == pytest.approx(float(value))


@pytest.mark.parametrize("name", sorted(EXPERT_NAMES))
def test_an_invalid_expert_variable_is_refused_by_its_name(name: str, monkeypatch) -> None:
    monkeypatch.setenv(f"LISTSERVE_{name.upper()}", "not-a-value")
    with pytest.raises(ValidationError, match=rf"\b{name}\b"):
        Settings()


def test_out_of_range_expert_values_are_refused_by_name(monkeypatch) -> None:
    monkeypatch.setenv("LISTSERVE_MAX_WAIT_MS", "-1")
    with pytest.raises(ValidationError, match="max_wait_ms"):
        Settings()
    monkeypatch.delenv("LISTSERVE_MAX_WAIT_MS")
    with pytest.raises(ValidationError, match="compute_nice"):
        Settings(compute_nice=20)


def test_a_keyword_wins_over_the_environment_in_either_form(monkeypatch) -> None:
    monkeypatch.setenv("LISTSERVE_MAX_WAIT_MS", "7")
    monkeypatch.setenv("LISTSERVE_COMPUTE_NICE", "3")
    assert Settings().expert.max_wait_ms == 7.0
    flat = Settings(max_wait_ms=1)
    assert flat.expert.max_wait_ms == 1.0 and flat.expert.compute_nice == 3
    grouped = Settings(expert={"max_wait_ms": 2})
    assert grouped.expert.max_wait_ms == 2.0 and grouped.expert.compute_nice == 3
    whole = Settings(expert=ExpertSettings(max_wait_ms=4))
    assert whole.expert.max_wait_ms == 4.0 and whole.expert.compute_nice == 10
    both = Settings(expert=ExpertSettings(max_wait_ms=4), max_wait_ms=5)
    assert both.expert.max_wait_ms == 5.0


def test_flat_values_name_every_setting_and_rebuild_the_same_settings(monkeypatch) -> None:
    settings = CelerySettings(admin_token="secret", heartbeat_seconds=0.5, training_queue="gpu")
    values = settings.flat_values()
    assert set(values) == set(CORE_FIELDS) | EXPERT_NAMES | set(WORKER_FIELDS)
    monkeypatch.setenv("LISTSERVE_HEARTBEAT_SECONDS", "9")  # the keywords still win
    assert CelerySettings(**values) == settings
    assert isinstance(values["admin_token"], SecretStr)


def test_the_celery_settings_keep_the_service_settings_expert_group() -> None:
    settings = CelerySettings.extend(Settings(heartbeat_seconds=0.5, compute_nice=4))
    assert settings.expert.heartbeat_seconds == 0.5 and settings.expert.compute_nice == 4


def test_each_setting_has_one_name_and_a_description() -> None:
    assert not EXPERT_NAMES & set(CORE_FIELDS)
    assert not EXPERT_NAMES & set(WORKER_FIELDS)
    fields = {**CORE_FIELDS, **ExpertSettings.model_fields, **WORKER_FIELDS}
    assert [name for name, field in fields.items() if not field.description] == []


def documented_defaults(section: str) -> dict[str, str]:
    """`{name: default cell}` of the table under `## <section>` in docs/configuration.md."""
    text = CONFIGURATION_DOC.read_text(encoding="utf-8")
    body = text.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `LISTSERVE_([A-Z0-9_]+)` \| ([^|]+) \|", body, flags=re.MULTILINE)
    names = [name.lower() for name, _ in rows]
    assert len(names) == len(set(names)), f"a setting is listed twice under {section}"
    return {name.lower(): cell.strip() for name, cell in rows}


def as_documented(default: Any) -> str:
    if default is None:
        return "unset"
    if default == "":
        return "empty"
    if isinstance(default, bool):
        return f"`{str(default).lower()}`"
    if isinstance(default, Path):
        return f"`./{default}`"
    return f"`{default}`"


@pytest.mark.parametrize(
    ("section", "fields"),
    [
        ("Core", CORE_FIELDS),
        ("Expert", ExpertSettings.model_fields),
        ("Worker (Celery)", WORKER_FIELDS),
    ],
)
def test_the_configuration_doc_lists_exactly_the_settings_with_their_defaults(
    section: str, fields: dict[str, FieldInfo]
) -> None:
    documented = documented_defaults(section)
    assert set(documented) == set(fields)  # every setting, and none that is gone
    for name, field in fields.items():
        assert documented[name] == as_documented(field.default), name
