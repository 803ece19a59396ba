"""streamhub.asgi_handler.RequestSlots: how many requests of an API process run at once, in what order,
and the early give-back of a request that waits on something."""

import asyncio

from streamhub.asgi_handler import RequestSlots


def run(coroutine):
    return asyncio.run(coroutine)


def test_at_most_size_requests_run_at_once_in_arrival_order():
    slots = RequestSlots(size=2, hold=5.0)
    running: list[int] = []
    most = 0
    started: list[int] = []

    async def request(number: int) -> None:
        nonlocal most
        async with slots.taken():
            started.append(number)
            running.append(number)
            most = max(most, len(running))
            await asyncio.sleep(0.01)
            running.remove(number)

    async def main() -> None:
        await asyncio.gather(*(request(number) for number in range(8)))

    run(main())
    assert most == 2
    assert started == list(range(8))
    assert slots.free == 2 and slots.given_back_early == 0


def test_a_request_past_its_hold_lets_the_next_start_beside_it():
    slots = RequestSlots(size=1, hold=0.05)
    events: list[str] = []

    async def waits_on_something() -> None:
        async with slots.taken():
            events.append("slow started")
            await asyncio.sleep(0.5)
            events.append("slow ended")

    async def quick() -> float:
        loop = asyncio.get_running_loop()
        asked = loop.time()
        async with slots.taken():
            events.append("quick ran")
        return loop.time() - asked

    async def main() -> float:
        slow = asyncio.ensure_future(waits_on_something())
        await asyncio.sleep(0)  # the slow one takes the slot first
        waited = await quick()
        await slow
        return waited

    waited = run(main())
    assert events == ["slow started", "quick ran", "slow ended"]
    assert 0.04 <= waited < 0.3
    # The slot given back early is not given back twice when the slow request ends.
    assert slots.free == 1 and slots.given_back_early == 1


def test_a_failing_request_gives_its_slot_back():
    slots = RequestSlots(size=1, hold=5.0)

    async def fails() -> None:
        async with slots.taken():
            raise RuntimeError("view failed")

    async def main() -> None:
        try:
            await fails()
        except RuntimeError:
            pass
        async with slots.taken():  # would wait forever if the slot were lost
            pass

    run(asyncio.wait_for(main(), 2))
    assert slots.free == 1
