"""A call's PJSIP log: the SIP password masked, rotated once past its cap, pruned by age except
the logs of live calls."""

from __future__ import annotations

import os
import time

from media_engine.sip.logs import CallLog, call_log_files, call_log_path, prune_call_logs


def test_the_password_is_masked_in_every_line(tmp_path):
    log = CallLog(tmp_path / "call-1.log", 0, ["s3cret!", "no"])
    log.write(b"auth: user alice password s3cret! realm x\n")
    log.write(b"no mask for short secrets: no\n")
    log.close()
    text = (tmp_path / "call-1.log").read_text()
    assert "s3cret" not in text and "password *** realm" in text and "short secrets: no" in text


def test_a_log_past_its_cap_is_rotated_once_and_a_call_keeps_at_most_twice_the_cap(tmp_path):
    path = call_log_path(tmp_path, 7)
    log = CallLog(path, 1000, [])
    for number in range(100):
        log.write(f"line {number:04d} ".encode() + b"x" * 40 + b"\n")  # 51 bytes each
    log.close()
    current, rotated = call_log_files(tmp_path, 7)
    assert (current.name, rotated.name) == ("call-7.log", "call-7.log.1")
    assert current.stat().st_size <= 1000 and rotated.stat().st_size <= 1000
    assert current.read_text().splitlines()[-1].startswith("line 0099")  # the newest lines are kept
    assert "line 0000" not in current.read_text() + rotated.read_text()  # the oldest went
    # A call placed again appends to its log (its size counts against the cap).
    again = CallLog(path, 1000, [])
    assert again.size == current.stat().st_size
    again.close()


def test_old_logs_are_pruned_but_those_of_live_calls(tmp_path):
    old = time.time() - 3600
    for name in ("call-1.log", "call-1.log.1", "call-2.log", "call-3.log", "other.txt"):
        (tmp_path / name).write_text("x")
        if name != "call-3.log":
            os.utime(tmp_path / name, (old, old))
    assert prune_call_logs(tmp_path, 600, keep={2}) == 2
    assert sorted(path.name for path in tmp_path.iterdir()) == ["call-2.log", "call-3.log", "other.txt"]
