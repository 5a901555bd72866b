"""A run killed or shut down mid-epoch resumes after a restart and ends as if never interrupted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import torch
from safetensors.torch import load_file

from tests.training_helpers import toy_manager, toy_options

ROOT = Path(__file__).resolve().parents[1]

# Runs the toy task in a child process, slowed down and printing each step, so the test can kill it mid-epoch.
CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    sys.path.insert(0, sys.argv[1])
    import tunerflow.training.callbacks as callbacks
    from tests.training_helpers import toy_manager, toy_options

    original = callbacks.Cancel.on_step_end

    def slowed(self, setup, state, loss):
        time.sleep(0.1)
        print(f"step {state.step} epochs-done {state.epoch}", flush=True)
        original(self, setup, state, loss)

    callbacks.Cancel.on_step_end = slowed
    manager = toy_manager(Path(sys.argv[2]))
    manager.start(toy_options(Path(sys.argv[3]), epochs=3, run_name="crash"))
    manager.wait_idle()
    """
)


def _kill_mid_second_epoch(home: Path, model: Path) -> int:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(ROOT), str(home), str(model)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    killed_at = None
    try:
        for line in child.stdout:
            words = line.split()
            if len(words) == 4 and words[0] == "step" and int(words[3]) == 1:
                steps_into_epoch = int(words[1])
                if (home / "runs/crash/checkpoint/state.json").is_file() and steps_into_epoch >= 13:
                    killed_at = steps_into_epoch
                    os.killpg(child.pid, signal.SIGKILL)
                    break
    finally:
        child.wait(timeout=60)
    assert killed_at is not None, "the child finished before it could be killed"
    return killed_at


def test_killed_run_resumes_and_finishes_like_an_uninterrupted_one(tmp_path, tiny_model_dir):
    home = tmp_path / "crashed"
    killed_at = _kill_mid_second_epoch(home, tiny_model_dir)
    record = json.loads((home / "runs/crash/record.json").read_text())
    assert record["status"] == "STARTED"
    checkpoint = json.loads((home / "runs/crash/checkpoint/state.json").read_text())["state"]
    assert checkpoint["epoch"] == 1 and checkpoint["step"] < killed_at

    manager = toy_manager(home)  # a restarted tuner: finds the interrupted run and resumes it
    try:
        assert manager.wait_idle(timeout=300)
        resumed = manager.get("crash")
    finally:
        manager.close()
    assert resumed.status.value == "FINISHED", resumed.details
    assert resumed.attempts == 2
    assert resumed.metrics["steps"] == resumed.metrics["total_steps"] == sum(checkpoint["steps_per_epoch"])
    assert "resuming from the checkpoint after epoch 1" in (home / "runs/crash/log.txt").read_text()

    reference = toy_manager(tmp_path / "reference", start_worker=False)
    try:
        uninterrupted = reference.run_now(
            reference.start(toy_options(tiny_model_dir, epochs=3, run_name="crash")).run_name
        )
    finally:
        reference.close()
    assert uninterrupted.metrics["steps"] == resumed.metrics["steps"]
    assert uninterrupted.metrics["after"] == resumed.metrics["after"]
    ours = load_file(str(Path(resumed.artifact) / "model.safetensors"))
    theirs = load_file(str(Path(uninterrupted.artifact) / "model.safetensors"))
    assert all(torch.allclose(ours[k], theirs[k], atol=1e-6) for k in theirs)


def test_shutdown_mid_epoch_resumes_at_that_batch_like_an_uninterrupted_run(tmp_path, tiny_model_dir, monkeypatch):
    from tunerflow.runs import RunStatus
    from tunerflow.training.callbacks import Cancel

    home = tmp_path / "shut"
    manager = toy_manager(home, start_worker=False)
    original = Cancel.on_step_end

    def shut_down_after_step_13(self, setup, state, loss):
        if state.step == 13:
            manager.close()  # what a tuner closing does: the run sees "shutdown" at this step
        original(self, setup, state, loss)

    monkeypatch.setattr(Cancel, "on_step_end", shut_down_after_step_13)
    options = toy_options(tiny_model_dir, epochs=3, run_name="shut")
    interrupted = manager.run_now(manager.start(options).run_name)
    monkeypatch.undo()
    assert interrupted.status is RunStatus.STARTED, interrupted.details
    saved = json.loads((home / "runs/shut/checkpoint/state.json").read_text())["state"]
    batch = 13 - saved["steps_per_epoch"][0]
    assert (saved["epoch"], saved["step"], saved["batch_in_epoch"]) == (1, 13, batch) and batch > 0
    assert saved["stop_reason"] == "shutdown"

    restarted = toy_manager(home, start_worker=False)  # finds the STARTED run and resumes it
    try:
        resumed = restarted.run_now("shut")
    finally:
        restarted.close()
    assert resumed.status is RunStatus.FINISHED, resumed.details
    assert f"at batch {batch} of epoch 2" in (home / "runs/shut/log.txt").read_text()

    reference = toy_manager(tmp_path / "reference", start_worker=False)
    try:
        uninterrupted = reference.run_now(reference.start(options).run_name)
    finally:
        reference.close()
    assert resumed.metrics["steps"] == uninterrupted.metrics["steps"] == sum(saved["steps_per_epoch"])
    assert resumed.metrics["epoch_losses"] == uninterrupted.metrics["epoch_losses"]
    assert resumed.metrics["after"] == uninterrupted.metrics["after"]
    ours = load_file(str(Path(resumed.artifact) / "model.safetensors"))
    theirs = load_file(str(Path(uninterrupted.artifact) / "model.safetensors"))
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)
