"""--train_minutes: how many training steps fit into a wall-clock budget, planned from the speed of the first steps.

The learning-rate schedule decays over the run's total steps, so the total has to be known before the
decay starts. Training therefore runs at the warm-up's (or the peak's) rate while the steps are timed,
and plans the total at the end of warm-up, or once TIMED_STEPS steps have been timed if warm-up is
shorter. The first call is never timed: it traces and compiles the step, which can take longer than
a hundred steps, although that time does count against the budget.
"""

import time
from collections.abc import Callable

TIMED_STEPS = 50  # enough to average out a slow step or two (a progress line, a busy core), cheap at any size


class StepPlanner:
    """Observes the step after each compiled call and, once it has timed enough steps, plans the total.

        planner = StepPlanner(10, first_step=0, warmup_steps=100)
        planner.observe(step=1)    # None: the first call, which compiled the step, is not timed
        planner.observe(step=60)   # None: planning waits for the end of warm-up
        planner.observe(step=100)  # e.g. 3150: the steps that fit into the 10 minutes counted from the start
    """

    def __init__(self, minutes: float, *, first_step: int, warmup_steps: int, clock: Callable[[], float] = time.monotonic):
        self.budget_seconds = minutes * 60
        self.warmup_steps = warmup_steps
        self.clock = clock
        self.started = clock()
        self.plan_at = first_step + 1  # the first call trains one step; its observation sets the real plan_at
        self.timed_from: tuple[int, float] | None = None  # (step, time) at the end of the first call
        self.seconds_per_step: float | None = None

    def stop_at(self, step: int) -> int:
        """The step the next compiled call must stop at (or before), so that planning happens on time."""
        return max(self.plan_at, step + 1)

    def observe(self, step: int) -> int | None:
        """Called after each compiled call with the step reached; returns the planned total steps once decided."""
        # Which steps plan depends on step numbers alone, never on the clock, so that the workers of a multi-worker
        # run (which train in step) all plan at the same step and can agree on one plan there.
        now = self.clock()
        if self.timed_from is None:
            self.timed_from = (step, now)
            self.plan_at = max(self.warmup_steps, step + TIMED_STEPS)
            return None
        if step < self.plan_at:
            return None
        timed_step, timed_time = self.timed_from
        self.seconds_per_step = (now - timed_time) / (step - timed_step)
        remaining = self.budget_seconds - (now - self.started)  # below 0 after a warm-up longer than the budget
        return step + max(0, int(remaining / self.seconds_per_step))
