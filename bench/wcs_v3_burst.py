"""WCS v3 under a burst: 50 concurrent long calls (``Prefer: wait=5``) beside a plain GET, each
figure printed beside its reference measured in the same run with no burst.

The platform runs as `make run` starts it (Daphne, a control worker with beat, a media worker; no
engine is needed) on free ports with a database of its own. The long call is ``/push/startup`` of
a stream that is not live: a real job (row, control task, completion event, awaited answer) whose
work is short, so the figures are the job machinery's, not media's.

Measured:
- a plain GET (``/v1/vhosts``, OME API) repeated one after another: latency alone, then while the
  burst's calls are waiting;
- the burst: how long each of the 50 calls took to answer, and how many answered 200 (done within
  the wait) or 202;
- the control worker: the round trip of another control task (Celery's ``celery.accumulate``) and
  how long one more job takes from creation to done (its ``jobs/find`` times), alone, then sent in
  the middle of the burst (jobs queue behind other control tasks: these must not be starved);
- the API server's threads during the burst.

    .venv/bin/python bench/wcs_v3_burst.py [--calls 50] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from celery import Celery

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "streamhub.settings")  # the test fixtures read settings

from tests.integration.conftest import LiveStreamHub, redis_answers, wait_for  # noqa: E402

PYTHON = sys.executable
# The spec's example header for the development token "ome-access-token".
OME_AUTH = "Basic b21lLWFjY2Vzcy10b2tlbg=="


def start_platform(folder: Path) -> LiveStreamHub:
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    assert redis_answers(redis_url), f"no Redis at {redis_url}"
    hub = LiveStreamHub(folder, redis_url)
    hub.start()
    celery = [PYTHON, "-m", "celery", "-A", "streamhub", "worker", "--loglevel", "INFO"]
    # The same workers as scripts/run_platform.py.
    hub._spawn("media-worker", [*celery, *"-Q media --pool threads --concurrency 32 --hostname m@%h".split()])
    hub._spawn("control-worker", [*celery, "-Q", "control", "--concurrency", "2", "-B", "-s",
                                  str(folder / "beat"), "--hostname", "c@%h"])  # fmt: skip
    wait_for(lambda: " ready." in hub.log("control-worker") and " ready." in hub.log("media-worker"), 90)
    return hub


def percentiles(values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    median, slowest = statistics.median(ordered), ordered[-1]
    return f"median {median * 1000:7.1f} ms  p95 {p95 * 1000:7.1f} ms  max {slowest * 1000:7.1f} ms"


def threads_of(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("Threads:")))


class Bench:
    def __init__(self, hub: LiveStreamHub, session: aiohttp.ClientSession) -> None:
        self.hub = hub
        self.session = session
        self.serial = 0
        self.celery = Celery(broker=hub.env["REDIS_URL"], backend=hub.env["REDIS_URL"])
        self.celery.conf.broker_transport_options = {"global_keyprefix": hub.env["STREAMHUB_CELERY_PREFIX"]}

    async def plain_get(self) -> float:
        started = time.monotonic()
        async with self.session.get(f"{self.hub.url}/v1/vhosts", headers={"Authorization": OME_AUTH}) as response:
            await response.read()
            assert response.status == 200
        return time.monotonic() - started

    async def long_call(self) -> tuple[int, float, str]:
        self.serial += 1
        body = {"streamName": f"bench{self.serial}", "rtmpUrl": f"rtmp://127.0.0.1:1/live/k{self.serial}"}
        started = time.monotonic()
        url = f"{self.hub.url}/rest-api/v3/push/startup"
        async with self.session.post(url, json=body, headers={"Prefer": "wait=5"}) as response:
            await response.read()
            return response.status, time.monotonic() - started, body["streamName"]

    async def job_seconds(self, stream_name: str) -> float:
        """Creation to done of the job that pushes ``stream_name`` (waits until it is done)."""
        for _ in range(600):
            async with self.session.post(
                f"{self.hub.url}/rest-api/v3/jobs/find", json={"method": "push/startup", "state": "DONE"}
            ) as response:
                jobs = await response.json() if response.status == 200 else []
            job = next((job for job in jobs if job["request"]["streamName"] == stream_name), None)
            if job:
                return (job["finishedTime"] - job["createdTime"]) / 1000
            await asyncio.sleep(0.1)
        raise AssertionError(f"the job of {stream_name} never finished")

    def control_task_seconds(self) -> float:
        """Round trip of a control task that is not a job, through the platform's own queues."""
        started = time.monotonic()
        assert self.celery.send_task("celery.accumulate", args=(1,), queue="control").get(timeout=120) == [1]
        return time.monotonic() - started

    async def gets_while(self, tasks: list[asyncio.Task]) -> list[float]:
        """A GET every 50 ms (a client, not a second burst) until the burst is answered."""
        samples = []
        while not all(task.done() for task in tasks):
            samples.append(await self.plain_get())
            await asyncio.sleep(0.05)
        return samples


async def run(hub: LiveStreamHub, calls: int, rounds: int) -> None:
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as session:
        bench = Bench(hub, session)
        for _ in range(5):  # warm-up: imports, connections
            await bench.plain_get()
            await bench.long_call()
        api_pid = hub.processes["api"].pid

        reference_gets = [await bench.plain_get() for _ in range(100)]
        reference_calls, reference_jobs = [], []
        for _ in range(10):
            _, seconds, name = await bench.long_call()
            reference_calls.append(seconds)
            reference_jobs.append(await bench.job_seconds(name))
        reference_control = [bench.control_task_seconds() for _ in range(10)]
        threads_idle = threads_of(api_pid)

        burst_gets, burst_calls, burst_jobs, burst_control, statuses, threads = [], [], [], [], [], []
        for _ in range(rounds):
            tasks = [asyncio.create_task(bench.long_call()) for _ in range(calls)]
            await asyncio.sleep(0.05)
            probe = asyncio.create_task(bench.long_call())  # one more job, in the middle of the burst
            threads.append(threads_of(api_pid))
            burst_control.append(await asyncio.to_thread(bench.control_task_seconds))
            burst_gets += await bench.gets_while(tasks)
            results = await asyncio.gather(*tasks)
            statuses += [status for status, _, _ in results]
            burst_calls += [seconds for _, seconds, _ in results]
            _, _, probe_name = await probe
            burst_jobs.append(await bench.job_seconds(probe_name))
            await asyncio.sleep(1)

    print(f"WCS v3 burst: {calls} concurrent /rest-api/v3/push/startup calls (Prefer: wait=5), {rounds} rounds")
    print(f"  plain GET /v1/vhosts, alone            ({len(reference_gets):4d}): {percentiles(reference_gets)}")
    print(f"  plain GET /v1/vhosts, during the burst ({len(burst_gets):4d}): {percentiles(burst_gets)}")
    print(f"  v3 call answered, alone                ({len(reference_calls):4d}): {percentiles(reference_calls)}")
    print(f"  v3 call answered, in the burst         ({len(burst_calls):4d}): {percentiles(burst_calls)}")
    print(f"  other control task, alone             ({len(reference_control):4d}): {percentiles(reference_control)}")
    print(f"  other control task, mid-burst          ({len(burst_control):4d}): {percentiles(burst_control)}")
    print(f"  one job created->done, alone           ({len(reference_jobs):4d}): {percentiles(reference_jobs)}")
    print(f"  one job created->done, mid-burst       ({len(burst_jobs):4d}): {percentiles(burst_jobs)}")
    print(f"  burst answers: {statuses.count(200)} x 200 (done within wait), {statuses.count(202)} x 202, "
          f"{len(statuses) - statuses.count(200) - statuses.count(202)} other")  # fmt: skip
    print(f"  API server threads: {threads_idle} idle, {max(threads)} during the burst")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="wcs-v3-burst-") as folder:
        hub = start_platform(Path(folder))
        try:
            asyncio.run(run(hub, args.calls, args.rounds))
        finally:
            hub.stop()


if __name__ == "__main__":
    main()
