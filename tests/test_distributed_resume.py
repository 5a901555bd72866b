"""A 2-process run whose tuner, launcher and workers are killed after an epoch resumes with 2 and finishes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from tests.test_distributed import ATOL, still_model, trained  # noqa: F401 (still_model: a fixture)
from tests.training_helpers import toy_manager

ROOT = Path(__file__).resolve().parents[1]

# A tuner in a child process; the workers sleep at each step (a test-only hook) so that it can be killed mid-run.
CHILD = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    sys.path.insert(0, sys.argv[1])
    from tests.test_distributed import equivalence_options
    from tests.training_helpers import toy_manager

    manager = toy_manager(Path(sys.argv[2]))
    manager.start(equivalence_options(Path(sys.argv[3]), 2, **json.loads(sys.argv[4])))
    manager.wait_idle()
    """
)


def test_killed_two_process_run_resumes_with_two_and_ends_like_one_process(tmp_path, still_model):  # noqa: F811
    home, options = tmp_path / "crashed", {"epochs": 2, "run_name": "d2"}
    env = {**os.environ, "TUNERFLOW_TEST_FAULT": "delay=0.1"}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(ROOT), str(home), str(still_model), json.dumps(options)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    state_file = home / "runs/d2/checkpoint/state.json"
    try:
        deadline = time.monotonic() + 180
        while not state_file.is_file():
            assert child.poll() is None and time.monotonic() < deadline, "the run ended before its first checkpoint"
            time.sleep(0.1)
        time.sleep(0.3)  # a few steps into epoch 2
        os.killpg(child.pid, signal.SIGKILL)  # the tuner and torchrun; the workers (own sessions) notice and exit
    finally:
        child.wait(timeout=60)
    checkpoint = json.loads(state_file.read_text())
    assert (checkpoint["state"]["epoch"], checkpoint["world_size"]) == (1, 2)
    assert json.loads((home / "runs/d2/record.json").read_text())["status"] == "STARTED"

    manager = toy_manager(home)  # a restarted tuner resumes the run, launching 2 processes again
    try:
        assert manager.wait_idle(timeout=300)
        resumed = manager.get("d2")
    finally:
        manager.close()
    assert resumed.status.value == "FINISHED", resumed.details
    assert resumed.attempts == 2 and resumed.metrics["steps"] == resumed.metrics["total_steps"]
    log = (home / "runs/d2/log.txt").read_text()
    assert "resuming from the checkpoint after epoch 1 (step 10)" in log

    _, one = trained(tmp_path / "one", still_model, devices=1, epochs=2)  # uninterrupted, one process
    assert one.metrics["steps"] == resumed.metrics["steps"]
    first = load_file(str(tmp_path / "one/runs/d1/checkpoint/model.safetensors"))
    second = load_file(str(home / "runs/d2/checkpoint/model.safetensors"))
    for key in first:
        torch.testing.assert_close(second[key], first[key], atol=ATOL, rtol=0, msg=key)
