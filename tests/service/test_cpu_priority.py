"""Lowering one thread's CPU priority: that thread only, capped at 19, and nothing off Linux."""

import logging

from service.process import cpu_priority
from service.process.cpu_priority import MAX_NICE, lower_this_threads_priority
from tests.thread_nice import in_a_thread, linux_only, nice_with_room_for, own_nice

pytestmark = linux_only


def test_only_the_calling_thread_is_lowered_and_its_new_nice_is_returned() -> None:
    base = nice_with_room_for(3)
    returned, nice = in_a_thread(lambda: lower_this_threads_priority(3))
    assert returned == nice == base + 3
    assert own_nice() == base


def test_the_nice_value_stops_at_19() -> None:
    returned, nice = in_a_thread(lambda: lower_this_threads_priority(MAX_NICE + 5))
    assert returned == nice == MAX_NICE


def test_an_increment_of_zero_changes_nothing() -> None:
    assert in_a_thread(lambda: lower_this_threads_priority(0)) == (None, own_nice())


def test_off_linux_nothing_is_changed(monkeypatch) -> None:
    """`setpriority(PRIO_PROCESS, tid)` would renice a whole process elsewhere."""
    monkeypatch.setattr(cpu_priority.sys, "platform", "darwin")
    assert in_a_thread(lambda: lower_this_threads_priority(3)) == (None, own_nice())


def test_a_refusal_is_logged_and_serving_goes_on(monkeypatch, caplog) -> None:
    def refuse(*_) -> None:
        raise PermissionError("not allowed here")

    monkeypatch.setattr(cpu_priority.os, "setpriority", refuse)
    with caplog.at_level(logging.WARNING, logger=cpu_priority.__name__):
        assert in_a_thread(lambda: lower_this_threads_priority(3)) == (None, own_nice())
    assert "not allowed here" in caplog.text
