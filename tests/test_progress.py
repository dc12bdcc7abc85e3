"""jadv.progress: rate/ETA bookkeeping and lines, the progress= argument of long functions, and
the training loop's and the studies' progress lines (which go through it)."""
import io
import re

import pytest

from jadv import progress as P


class FakeClock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def test_rate_eta_and_lines():
    clock, out = FakeClock(), io.StringIO()
    p = P.Progress(100, desc="step", unit="step", start=20, clock=clock, stream=out)
    clock.t += 8.0
    ev = p.set(40, loss=0.12345, epoch="0.40")               # 20 steps in 8 s
    assert (ev.rate, ev.eta_s, ev.done, ev.total) == (2.5, 24.0, 40, 100)
    assert out.getvalue() == "step 40/100 loss 0.1235 epoch 0.40 | 2.5 steps/s | ETA 0:00:24\n"
    clock.t += 2.0
    ev = p.set(50, emit=False)                               # the window restarts at each measurement
    assert ev.rate == 5.0 and ev.mean_rate == 3.0 and out.getvalue().count("\n") == 1
    p.emit(acc=0.5)
    assert out.getvalue().splitlines()[-1] == "step 50/100 acc 0.5000 | 5.0 steps/s | ETA 0:00:10"
    clock.t += 10.0
    p.set(100)
    final = p.close()
    assert final.final and out.getvalue().splitlines()[-1] == "step 100/100 | done in 0:00:20 (4.0 steps/s)"
    assert P.format_duration(3 * 3600 + 61.9) == "3:01:01" and P.format_duration(-5) == "0:00:00"


def test_update_cadence_callback_and_unknown_total():
    clock, events = FakeClock(), []
    p = P.Progress(10, desc="autoattack", unit="batch", clock=clock, min_interval_s=5.0, callback=events.append)
    for _ in range(10):
        clock.t += 1.0
        p.update(1, attack="apgd-ce")
    # one report after 5 s, one when complete (10 of 10), nothing printed
    assert [e.done for e in events] == [5, 10]
    assert events[0].line() == "autoattack 5/10 attack apgd-ce | 1.0 batches/s | ETA 0:00:05"
    q = P.Progress(None, desc="[s/p] part", unit="part", clock=clock, stream=io.StringIO())
    clock.t += 65
    assert q.set(3, fit="computed").line() == "[s/p] part 3 fit computed | elapsed 0:01:05"
    silent = P.Progress(5, enabled=False, stream=io.StringIO())
    assert silent.set(5) is not None and silent.stream.getvalue() == ""
    with pytest.raises(ValueError, match="total must be >= 0"):
        P.Progress(-1)


def test_make_progress_argument(capsys):
    assert not P.make_progress(None, total=3, desc="x").enabled
    assert not P.make_progress(False, total=3, desc="x").enabled
    loud = P.make_progress(True, total=3, desc="x", unit="batch", min_interval_s=0)
    loud.update(1)
    assert re.fullmatch(r"x 1/3 \| [\d.]+ batches/s \| ETA (\d+:\d\d:\d\d|unknown)\n", capsys.readouterr().out)
    seen = []
    P.make_progress(seen.append, total=2, desc="y", min_interval_s=0).update(2)
    assert seen[0].done == 2 and seen[0].total == 2 and capsys.readouterr().out == ""
    mine = P.Progress(None, desc="z")
    assert P.make_progress(mine, total=7, desc="ignored") is mine and mine.total == 7
    with pytest.raises(TypeError, match="progress must be None, a bool, a callable"):
        P.make_progress("yes", total=1, desc="x")


def test_study_parts_report_through_progress(tmp_path, capsys):
    from jadv.studies.common import cached_part
    wd = str(tmp_path / "tradeoff" / "smoke")
    assert cached_part(wd, "fit", lambda: {"a": 1}) == {"a": 1}
    assert cached_part(wd, "fit", lambda: {"a": 2}) == {"a": 1}          # reused, not recomputed
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "[tradeoff/smoke] part 1 fit computing ... | elapsed 0:00:00"
    assert re.fullmatch(r"\[tradeoff/smoke\] part 1 fit computed in 0:00:00 \| elapsed 0:00:0\d", lines[1])
    assert re.fullmatch(r"\[tradeoff/smoke\] part 2 fit reused \| elapsed 0:00:0\d", lines[2])


def test_training_loop_lines(tmp_path, capsys):
    from jadv import train
    c = train.base_config()
    c.dataset, c.model.name = "digits", "linear"
    c.batch_size, c.train_size, c.test_size, c.num_steps, c.log_every_steps, c.num_devices = 32, 128, 32, 4, 2, 1
    train.train_and_evaluate(c, str(tmp_path / "run"))
    steps = [line for line in capsys.readouterr().out.splitlines() if line.startswith("step ")]
    assert len(steps) == 2
    for n, line in zip((2, 4), steps):
        assert re.fullmatch(rf"step {n}/4 epoch [\d.]+ loss [\d.]+ acc [\d.]+ \| [\d.]+ steps/s \| ETA \d+:\d\d:\d\d",
                            line), line


def _tiny_classifier():
    import jax
    import jax.numpy as jnp
    import numpy as np
    w = jax.random.normal(jax.random.key(0), (4 * 4 * 1, 10))
    x = np.asarray(jax.random.uniform(jax.random.key(1), (20, 4, 4, 1)))
    f = lambda xb: xb.reshape(len(xb), -1) @ w
    y = np.asarray(jnp.argmax(f(x), -1))               # every point clean-correct
    return f, x, y


def test_robust_accuracy_reports_batches_through_progress(capsys):
    import jax
    from jadv import attacks as A
    f, x, y = _tiny_classifier()
    events = []
    rep = A.robust_accuracy(f, x, y, [{"name": "fgsm", "eps": 0.1}], key=jax.random.key(2), batch_size=8,
                            progress=lambda e: events.append(e))
    # 3 batches (8 + 8 + 4): the first report after 10 s or at the end; the end is one final event
    assert events[-1].final and events[-1].done == 3 and events[-1].total == 3
    assert events[-1].fields["points"] == "20/20" and events[-1].fields["clean"] == 1.0
    assert events[-1].fields["robust"] == rep["robust_accuracy"]
    assert capsys.readouterr().err == ""
    A.robust_accuracy(f, x, y, [{"name": "fgsm", "eps": 0.1}], key=jax.random.key(2), batch_size=8, progress=True)
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and re.fullmatch(r"\[robust_accuracy\] batch 3/3 points 20/20 clean 1\.0000 robust "
                                          r"[\d.]+ \| done in 0:00:\d\d \([\d.]+ batches/s\)", err[0]), err
    A.robust_accuracy(f, x, y, [{"name": "fgsm", "eps": 0.1}], key=jax.random.key(2), batch_size=8, progress=False)
    assert capsys.readouterr().err == ""


def test_autoattack_reports_each_attacks_batches(capsys):
    from jadv.attacks.autoattack import attack_batch_size
    import jax
    from jadv import attacks as A
    f, x, y = _tiny_classifier()
    events = []
    attacks = [{"name": "fgsm"}, {"name": "pgd", "steps": 3, "step_size": 0.05}]
    _, rep = A.autoattack(f, x, y, key=jax.random.key(3), eps=0.2, version="custom", attacks=attacks,
                          batch_size=8, verbose=False, checks=False, progress=events.append)
    assert capsys.readouterr().err == ""
    # each attack's last batch is reported (done reaches the total grown by that attack's batches)
    first = rep["attacks"][0]
    n_first = -(-first["n_attacked"] // attack_batch_size(first["n_attacked"], 8))
    assert events[0].done == events[0].total == n_first and events[0].fields["attack"] == "fgsm"
    assert events[0].fields["robust"] == first["robust_accuracy"]
    assert events[-1].fields["attack"] == "pgd" and events[-1].fields["robust"] == rep["robust_accuracy"]
    mine = P.Progress(None, desc="aa", unit="batch", callback=events.append, min_interval_s=0)
    A.autoattack(f, x, y, key=jax.random.key(3), eps=0.2, version="custom", attacks=attacks, batch_size=8,
                 verbose=False, checks=False, progress=mine)
    assert mine.done == mine.total > 0
