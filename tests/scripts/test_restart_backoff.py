"""The supervisor's restart pauses (scripts/run_platform.py): doubling while a child keeps crashing
soon after its start, capped, and back to the first pause after a run long enough to count as stable."""

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "run_platform.py"
spec = importlib.util.spec_from_file_location("run_platform", SCRIPT)
run_platform = importlib.util.module_from_spec(spec)
sys.modules["run_platform"] = run_platform  # dataclasses look their module up there
spec.loader.exec_module(run_platform)


def deaths(child, lifetimes: list[float]) -> list[float]:
    """The pause after each death, for a child that lived each of ``lifetimes`` seconds."""
    now, pauses = 1000.0, []
    for lifetime in lifetimes:
        child.started_at = now
        now += lifetime
        pauses.append(child.schedule_restart(now))
        now = child.restart_at
    return pauses


def test_a_crash_loop_doubles_the_pause_up_to_the_ceiling():
    child = run_platform.Child("engine", ["false"])
    assert deaths(child, [0.5] * 8) == [1, 2, 4, 8, 16, 30, 30, 30]
    assert child.crashes == 8


def test_a_child_that_ran_long_enough_starts_again_from_the_first_pause():
    child = run_platform.Child("engine", ["false"])
    assert deaths(child, [1, 1, 1, run_platform.STABLE_AFTER + 1, 1]) == [1, 2, 4, 1, 2]


@pytest.mark.parametrize(
    ("returncode", "text"), [(-9, "killed by SIGKILL"), (1, "exited with 1"), (0, "exited with 0")]
)
def test_the_supervisor_says_how_a_child_ended(returncode, text):
    assert run_platform.describe(returncode) == text
