"""`runengine --processes`: how many workers "auto" means, and each worker's share of the ICE ports."""

from __future__ import annotations

import os

import pytest

from apps.engine.workers import process_count, split_port_range


def test_auto_is_one_process_per_usable_cpu():
    assert process_count("auto") == len(os.sched_getaffinity(0))
    assert process_count("3") == 3
    with pytest.raises(ValueError):
        process_count("0")


def test_each_worker_gets_its_own_ice_ports():
    assert [split_port_range("10000-10099", i, 2) for i in range(2)] == ["10000-10049", "10050-10099"]
    assert split_port_range("", 1, 2) == ""  # any port, for every worker
    assert split_port_range("10000-10099", 0, 1) == "10000-10099"
    with pytest.raises(ValueError):
        split_port_range("10000-10000", 0, 2)
