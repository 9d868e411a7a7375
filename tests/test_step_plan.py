"""--train_minutes: the total steps planned from the speed of the first steps, the compiling call not counted."""

import pytest

from step_plan import TIMED_STEPS, StepPlanner


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_the_plan_fills_the_budget_at_the_speed_of_the_steps_after_the_compiling_call():
    clock = FakeClock()
    planner = StepPlanner(10, first_step=0, warmup_steps=100, clock=clock)
    assert planner.stop_at(0) == 1  # the first call trains one step: the one that compiles
    clock.now += 30.0  # tracing and compiling
    assert planner.observe(1) is None
    assert planner.stop_at(1) == 100  # the plan comes at the end of warm-up, before the decay starts
    clock.now += 99 * 0.2  # steps 2-100 at 0.2 s each
    total = planner.observe(100)
    # 600 s - 30 s compiling - 19.8 s so far leaves 550.2 s: 2,751 more steps at 0.2 s
    assert total == 100 + 2751
    assert planner.seconds_per_step == pytest.approx(0.2)


def test_without_warm_up_it_plans_after_timing_a_few_dozen_steps():
    clock = FakeClock()
    planner = StepPlanner(1, first_step=0, warmup_steps=0, clock=clock)
    clock.now += 5.0
    planner.observe(1)
    assert planner.stop_at(1) == 1 + TIMED_STEPS
    clock.now += 10 * 0.1
    assert planner.observe(11) is None  # a call that stops short (a progress line) does not plan yet
    clock.now += (TIMED_STEPS - 10) * 0.1
    assert planner.observe(1 + TIMED_STEPS) == 1 + TIMED_STEPS + int((60 - 5 - TIMED_STEPS * 0.1) / 0.1)


def test_a_resumed_run_without_a_plan_counts_the_budget_from_its_own_start():
    clock = FakeClock()
    planner = StepPlanner(2, first_step=500, warmup_steps=100, clock=clock)
    assert planner.stop_at(500) == 501
    planner.observe(501)
    assert planner.stop_at(501) == 501 + TIMED_STEPS
    clock.now += TIMED_STEPS * 0.5
    assert planner.observe(501 + TIMED_STEPS) == 501 + TIMED_STEPS + int((120 - TIMED_STEPS * 0.5) / 0.5)


def test_a_warm_up_longer_than_the_budget_ends_training_when_it_ends():
    clock = FakeClock()
    planner = StepPlanner(0.5, first_step=0, warmup_steps=1000, clock=clock)
    planner.observe(1)
    clock.now += 999 * 0.1  # 100 s of warm-up against a 30-second budget
    assert planner.observe(1000) == 1000


def test_several_steps_per_call_plan_at_the_first_call_boundary_after_the_timed_steps():
    clock = FakeClock()
    planner = StepPlanner(1, first_step=0, warmup_steps=10, clock=clock)
    planner.observe(1)
    clock.now += 3.9
    assert planner.observe(40) is None  # a call of 39 steps (a TPU's): fewer than TIMED_STEPS timed
    clock.now += 4.0
    assert planner.observe(80) == pytest.approx(80 + (60 - 7.9) / 0.1, abs=1)  # 79 steps timed, at 0.1 s
