"""Offsets under random schedules (tests/offsets_model.py): at least 1,000 of them, and the count printed."""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test

from tests.offsets_model import OffsetsModel, Tally

SCHEDULES = 1_000


def test_no_schedule_skips_a_record_or_commits_past_one() -> None:
    OffsetsModel.tally = Tally()
    run_state_machine_as_test(OffsetsModel, settings=settings(
        max_examples=SCHEDULES, stateful_step_count=30, deadline=None, database=None,
        suppress_health_check=[HealthCheck.too_slow]))
    tally = OffsetsModel.tally
    print(f"offsets model: {tally.schedules} schedules run, {tally.skipped_records} records skipped")
    assert tally.schedules >= SCHEDULES
    assert tally.skipped_records == 0
