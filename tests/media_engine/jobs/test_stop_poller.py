"""StopPoller: the stop question every media job asks many times a second, answered cheaply."""

from media_engine.jobs.source import POLL_INTERVAL, StopPoller


def test_asks_at_most_every_poll_interval_and_stays_stopped():
    now = [0.0]
    answers = iter([False, True])
    asked = []

    def should_stop() -> bool:
        asked.append(now[0])
        return next(answers)

    poller = StopPoller(should_stop, clock=lambda: now[0])
    assert poller() is False
    now[0] += POLL_INTERVAL / 2
    assert poller() is False  # too soon: not asked again
    now[0] += POLL_INTERVAL
    assert poller() is True
    now[0] += 10 * POLL_INTERVAL
    assert poller() is True  # stopped for good, without asking
    assert asked == [0.0, POLL_INTERVAL * 1.5]
