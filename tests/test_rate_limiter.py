"""The outbox's pacer: at most `rate` starts in any one second, even after a late wake."""

from __future__ import annotations

from bot.runtime.outbox import RateLimiter


class LateClock:
    """Virtual time whose sleeps wake exactly on time, except the ones told to be late."""

    def __init__(self, late: dict[int, float]) -> None:
        self.now = 0.0
        self.late = late  # sleep number -> seconds it wakes late
        self.sleeps = 0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        self.now += max(seconds, 0.0) + self.late.get(self.sleeps, 0.0)


def busiest_second(starts: list[float]) -> int:
    return max(sum(1 for t in starts[i:] if t < start + 1.0 - 1e-9)
               for i, start in enumerate(starts))


async def test_a_late_wake_followed_by_punctual_ones_never_puts_31_in_one_second() -> None:
    clock = LateClock(late={1: 0.015})  # the second start wakes 15 ms late (< half of 33 ms)
    limiter = RateLimiter(30, timer=clock, sleep=clock.sleep)
    starts = []
    for _ in range(120):
        await limiter.acquire()
        starts.append(clock())
    assert busiest_second(starts) == 30
    assert starts[-1] - starts[0] < 120 / 30 + 0.1  # the cadence kept: about 30 a second


async def test_after_a_long_hold_up_the_pacer_does_not_burst() -> None:
    clock = LateClock(late={5: 0.5})  # the event loop held up for half a second
    limiter = RateLimiter(30, timer=clock, sleep=clock.sleep)
    starts = []
    for _ in range(90):
        await limiter.acquire()
        starts.append(clock())
    assert busiest_second(starts) <= 30
    assert min(b - a for a, b in zip(starts, starts[1:], strict=False)) > 1 / 30 / 2
