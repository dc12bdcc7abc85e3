"""AutoAttack driver, robust_accuracy streaming, final checks and gradient-masking flags."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jadv import attacks as A
from jadv.attacks import eps_curve as E
from jadv.attacks import masking_checks as M

K = 10


def _mlp(key, d=36, k=K):
    k1, k2 = jax.random.split(key)
    params = {"w1": jax.random.normal(k1, (d, 16)) / np.sqrt(d) * 3, "w2": jax.random.normal(k2, (16, k))}

    def apply(p, x):
        return jnp.tanh(x.reshape(x.shape[0], -1) @ p["w1"]) @ p["w2"]

    return params, apply


@pytest.fixture
def setup():
    params, apply = _mlp(jax.random.key(5))
    f = lambda x: apply(params, x)  # noqa: E731
    x = np.asarray(jax.random.uniform(jax.random.key(6), (11, 6, 6, 1)))
    y = np.asarray(jnp.argmax(f(x), -1)).copy()
    y[:2] = (y[:2] + 1) % K  # two clean errors
    return f, x, y, params, apply


DET_ATTACKS = [  # deterministic and per-example: results do not depend on batch composition
    {"name": "fab-t", "steps": 10, "n_targets": 3},
    {"name": "pgd", "step_size": 0.01, "steps": 5, "init": "zero"},
    {"name": "fgsm"},
]


@pytest.mark.slow
def test_custom_autoattack_is_worst_case_of_single_attacks(setup, key):
    f, x, y, _, _ = setup
    eps = 0.05
    x_adv, rep = A.autoattack(f, x, y, key=key, eps=eps, version="custom", attacks=DET_ATTACKS, batch_size=4,
                              verbose=False)
    singles = A.robust_accuracy(f, x, y, [{**a, "eps": eps} for a in DET_ATTACKS], key=key, batch_size=4,
                                progress=False)
    assert rep["version"] == "custom"
    assert [e["name"] for e in rep["attacks"]] == ["fab-t", "pgd", "fgsm"]
    assert rep["robust_accuracy"] <= min(singles["per_attack"].values()) + 1e-12
    # a point survives AutoAttack iff it survives every attack: the same set as the worst case
    np.testing.assert_array_equal(rep["robust"], singles["robust"])
    assert rep["clean_accuracy"] == pytest.approx(singles["clean_accuracy"]) == pytest.approx(9 / 11)
    accs = [e["robust_accuracy"] for e in rep["attacks"]]
    assert all(a >= b for a, b in zip(accs, accs[1:])) and accs[0] <= rep["clean_accuracy"]
    assert rep["attacks"][0]["n_attacked"] == 9
    assert sum(e["n_broken"] for e in rep["attacks"]) == 9 - int(rep["robust"].sum())
    assert rep["max_perturbation"] <= eps + 1e-5 and rep["n_nan"] == 0
    assert 0.0 <= rep["value_range"][0] and rep["value_range"][1] <= 1.0
    assert set(rep["flags"]) >= {"zero_gradients", "randomized", "softmax_output", "square_beats_whitebox"}
    # returned points: broken ones are misclassified, the others are x
    pred = np.asarray(jnp.argmax(f(x_adv), -1))
    clean_ok = np.asarray(jnp.argmax(f(x), -1)) == y
    broken = clean_ok & ~rep["robust"]
    assert np.all(pred[broken] != y[broken])
    np.testing.assert_array_equal(x_adv[~broken], x[~broken])


def test_autoattack_final_checks_fire_on_a_broken_attack(setup, key):
    f, x, y, _, _ = setup

    def outside_ball(logits_fn, xb, yb, k):  # valid box, far outside any small eps-ball
        return 1.0 - xb

    clean_ok = np.asarray(jnp.argmax(f(x), -1)) == y
    assert np.any(np.asarray(jnp.argmax(f(1.0 - x), -1))[clean_ok] != y[clean_ok])  # it does "break" points
    with pytest.raises(A.AttackCheckError, match="perturbation"):
        A.autoattack(f, x, y, key=key, eps=0.05, version="custom", attacks=[outside_ball], verbose=False)

    def nan_attack(logits_fn, xb, yb, k):
        return xb * jnp.nan

    with pytest.raises(A.AttackCheckError, match="NaN"):
        A.robust_accuracy(f, x, y, [nan_attack], key=key, progress=False)
    with pytest.raises(A.AttackCheckError, match="perturbation"):
        A.check_perturbations(x, np.clip(x + 0.1, 0, 1), eps=0.05, norm="linf")
    with pytest.raises(A.AttackCheckError, match="outside"):
        A.check_perturbations(x, x + 2.0, norm="linf")


@pytest.mark.slow
def test_robust_accuracy_streaming_report(setup, key, capsys):
    f, x, y, params, apply = setup
    attacks = [{"name": "fgsm", "eps": 0.05}, {"name": "pgd", "eps": 0.05, "step_size": 0.02, "steps": 3},
               {"name": "pgd", "eps": 0.05, "step_size": 0.02, "steps": 3, "loss": "margin", "label": "pgd-cw"}]
    rep = A.robust_accuracy(f, x, y, attacks, key=key, batch_size=4, return_adv=True)
    err = capsys.readouterr().err
    assert "batch 3/3 points 11/11" in err and "batches/s" in err
    assert rep["n"] == 11 and set(rep["per_attack"]) == {"fgsm", "pgd", "pgd-cw"}
    per = np.array(list(rep["per_attack"].values()))
    assert rep["robust_accuracy"] <= per.min() + 1e-12 and per.max() <= rep["clean_accuracy"]
    assert rep["clean_accuracy"] == pytest.approx(9 / 11)
    assert rep["checks"]["pgd"]["max_norm"] <= 0.05 + 1e-6
    xa = rep["x_adv"]
    clean_ok = np.asarray(jnp.argmax(f(x), -1)) == y
    broken = clean_ok & ~rep["robust"]
    assert np.all(np.asarray(jnp.argmax(f(xa), -1))[broken] != y[broken])
    # (params, x) form: parameters are jit arguments; same numbers
    rep2 = A.robust_accuracy(apply, x, y, attacks[1:2], key=key, batch_size=4, params=params, progress=False)
    assert rep2["per_attack"]["pgd"] == rep["per_attack"]["pgd"]
    # duplicate names get a suffix
    rep3 = A.robust_accuracy(f, x, y, [attacks[0], attacks[0]], key=key, batch_size=16, progress=False)
    assert set(rep3["per_attack"]) == {"fgsm", "fgsm#2"}


@pytest.mark.slow
def test_masking_flags(setup, key):
    f, x, y, _, _ = setup
    xj, yj = jnp.asarray(x), jnp.asarray(y)
    flags = M.masking_flags(f, xj, yj, warn=False)
    assert not any(v["flag"] for v in flags.values())
    soft = lambda x: jax.nn.softmax(f(x))  # noqa: E731
    assert M.is_softmax_output(soft, xj) and not M.is_softmax_output(f, xj)
    flat = lambda x: jax.lax.stop_gradient(f(x))  # noqa: E731
    assert M.zero_gradient_fraction(flat, xj, yj) == 1.0 and M.zero_gradient_fraction(f, xj, yj) == 0.0
    rng = np.random.default_rng(0)
    noisy = lambda x: f(x) + rng.normal(size=(x.shape[0], K))  # noqa: E731
    assert M.is_randomized(noisy, xj, yj) and not M.is_randomized(f, xj, yj)
    with pytest.warns(UserWarning, match="softmax_output"):
        fl = M.masking_flags(soft, xj, yj, warn=True)
    assert fl["softmax_output"]["flag"]
    assert M.square_beats_whitebox({"apgd-ce": 0.5, "square": 0.4})
    assert not M.square_beats_whitebox({"apgd-ce": 0.5, "square": 0.499})
    assert M.accuracy_increases_with_eps([0.0, 0.1, 0.2], [0.9, 0.5, 0.6])
    assert not M.accuracy_increases_with_eps([0.2, 0.0, 0.1], [0.3, 0.9, 0.5])
    assert M.not_broken_at_large_eps(0.2) and not M.not_broken_at_large_eps(0.0)
    # on a real curve: monotone, and (almost) nothing survives eps = 1
    curve = A.robust_accuracy_curve(f, xj, yj, key=key, eps_grid=[0.0, 0.05, 0.3, 1.0], steps=5)
    assert not M.accuracy_increases_with_eps([0.0, 0.05, 0.3, 1.0], curve)
    assert not M.not_broken_at_large_eps(curve[-1])


@pytest.mark.slow
def test_standard_autoattack(setup, key):
    f, x, y, _, _ = setup
    eps = 0.03
    x_adv, rep = A.autoattack(f, x, y, key=key, eps=eps, batch_size=8, verbose=False)
    assert rep["version"] == "standard" and rep["norm"] == "linf" and rep["n"] == 11
    assert [e["name"] for e in rep["attacks"]] == ["apgd-ce", "apgd-t", "fab-t", "square"]
    for e in rep["attacks"]:
        assert set(e) == {"name", "robust_accuracy", "n_attacked", "n_broken", "time_s"} and e["time_s"] > 0
    assert rep["max_perturbation"] <= eps + 1e-5
    # AutoAttack never does worse than its first attack alone (same key -> same draws) or FAB-T alone
    _, first = A.autoattack(f, x, y, key=key, eps=eps, version="custom", batch_size=8, verbose=False,
                            attacks=[A.standard_attacks(eps)[0]], checks=False)
    assert np.all(first["robust"] | ~rep["robust"])
    fab = A.robust_accuracy(f, x, y, [A.standard_attacks(eps)[2]], key=key, batch_size=8, progress=False)
    assert np.all(fab["robust"] | ~rep["robust"])
    assert rep["robust_accuracy"] <= min(first["robust_accuracy"], fab["robust_accuracy"])


@pytest.mark.slow
def test_sharded_evaluation_matches_single_device(setup, key):
    """8 fake CPU devices (conftest): batches split over a "data" mesh give the same answers."""
    f, x, y, _, _ = setup
    n = jax.device_count()
    attacks = [{"name": "fgsm", "eps": 0.05}, {"name": "pgd", "eps": 0.05, "step_size": 0.02, "steps": 3,
                                                "init": "zero"}]
    a = A.robust_accuracy(f, x, y, attacks, key=key, batch_size=n, progress=False)
    b = A.robust_accuracy(f, x, y, attacks, key=key, batch_size=n, progress=False, shard=True, checks=True)
    assert abs(a["robust_accuracy"] - b["robust_accuracy"]) <= 1 / len(x) + 1e-12
    assert a["clean_accuracy"] == b["clean_accuracy"]
    assert "zero_gradients" in b["flags"] and "square_beats_whitebox" in b["flags"]
    if n > 1:
        with pytest.raises(ValueError, match="divisible"):
            A.robust_accuracy(f, x, y, attacks, key=key, batch_size=n + 1, shard=True, progress=False)
    _, rep = A.autoattack(f, x, y, key=key, eps=0.05, version="custom", attacks=[attacks[1]], batch_size=n,
                          shard=True, verbose=False, checks=False)
    assert abs(rep["robust_accuracy"] - a["per_attack"]["pgd"]) <= 1 / len(x) + 1e-12
    # parameters passed as jit arguments (params=, as experiments/evaluate.py does) live on one
    # device; with shard=True they are replicated over the batch's devices
    _, _, _, params, apply = setup
    params = jax.device_put(params, jax.devices()[0])
    c = A.robust_accuracy(apply, x, y, attacks, key=key, batch_size=n, progress=False, shard=True, params=params)
    assert c["clean_accuracy"] == a["clean_accuracy"]
    assert abs(c["robust_accuracy"] - a["robust_accuracy"]) <= 1 / len(x) + 1e-12
    _, rep = A.autoattack(apply, x, y, key=key, eps=0.05, version="custom", attacks=[attacks[1]], batch_size=n,
                          shard=True, verbose=False, checks=False, params=params)
    assert abs(rep["robust_accuracy"] - a["per_attack"]["pgd"]) <= 1 / len(x) + 1e-12


@pytest.mark.slow
def test_eps_curve_flags(setup, key):
    f, x, y, _, _ = setup
    out = E.eps_curve_flags(f, x, y, key=key, eps_grid=[0.0, 0.05], steps=3, warn=False)
    assert out["eps_grid"][-1] == 1.0 and len(out["curve"]) == 3
    assert not out["flags"]["accuracy_increases_with_eps"]["flag"]
    assert not out["flags"]["not_broken_at_large_eps"]["flag"]
    # a gradient-masked model (zero input gradients): PGD from x never moves, even with the whole box
    masked = lambda z: jax.lax.stop_gradient(f(z))  # noqa: E731
    with pytest.warns(UserWarning, match="not_broken_at_large_eps"):
        out = E.eps_curve_flags(masked, x, y, key=key, eps_grid=[0.0, 0.05], steps=3, init="zero")
    assert out["flags"]["not_broken_at_large_eps"]["flag"]
    np.testing.assert_allclose(out["curve"], 9 / 11, rtol=1e-6)


def test_attack_batch_size_shrinks_to_a_power_of_two():
    from jadv.attacks.autoattack import attack_batch_size
    assert attack_batch_size(500, 200) == 200 and attack_batch_size(200, 200) == 200
    assert [attack_batch_size(n, 200) for n in (0, 1, 2, 3, 33, 64, 65, 129)] == [1, 1, 2, 4, 64, 64, 128, 200]
    assert attack_batch_size(3, 64, multiple=8) == 8 and attack_batch_size(9, 64, multiple=8) == 16
    assert attack_batch_size(100, 96, multiple=8) == 96


def test_late_attacks_run_on_a_batch_the_size_of_the_survivors(setup, key):
    """After the first attack, the survivors are attacked in a batch of the next power of two, not a
    padded full batch; the verdicts are those of the same deterministic attacks on full batches."""
    f, x, y, _, _ = setup
    shapes = []

    def recording(name):
        def attack(lf, xb, yb, k):
            shapes.append((name, xb.shape[0]))  # runs at trace time: one entry per compiled shape
            return xb
        return attack

    fgsm = {"name": "fgsm", "eps": 0.05}
    _, rep = A.autoattack(f, x, y, key=key, eps=0.05, version="custom", batch_size=8, verbose=False,
                          checks=False, attacks=[recording("first"), fgsm, recording("last")])
    left = rep["attacks"][1]["n_attacked"] - rep["attacks"][1]["n_broken"]
    assert rep["attacks"][0]["n_attacked"] == 9 and 0 < left < 8, rep["attacks"]
    assert shapes[0] == ("first", 8)
    assert shapes[-1] == ("last", 1 << (left - 1).bit_length())
    full = A.robust_accuracy(f, x, y, [fgsm], key=key, batch_size=8, progress=False)
    np.testing.assert_array_equal(rep["robust"], full["robust"])


def test_compilation_cache_is_written_and_gives_the_same_result(setup, key, tmp_path):
    """autoattack(compilation_cache=dir) stores its compiled programs there (a later process loads
    them instead of compiling); the results are those of a run without the cache."""
    from jax._src import compilation_cache as cc

    from jadv.attacks.autoattack import enable_compilation_cache
    f, x, y, params, apply = setup
    spec = [{"name": "fab-t", "steps": 3, "n_targets": 2}]
    names = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs",
             "jax_persistent_cache_min_entry_size_bytes")
    old = {n: getattr(jax.config, n) for n in names}
    try:
        _, plain = A.autoattack(apply, x, y, key=key, eps=0.3, params=params, version="custom", attacks=spec,
                                batch_size=8, verbose=False, checks=False)
        _, cached = A.autoattack(lambda p, z: apply(p, z) * 1.0, x, y, key=key, eps=0.3, params=params,
                                 version="custom", attacks=spec, batch_size=8, verbose=False, checks=False,
                                 compilation_cache=str(tmp_path / "xla"))
        assert jax.config.jax_compilation_cache_dir == str(tmp_path / "xla")
        assert len(list((tmp_path / "xla").iterdir())) > 0
        np.testing.assert_array_equal(cached["robust"], plain["robust"])
        assert enable_compilation_cache(tmp_path / "other") == str(tmp_path / "other")
    finally:
        for n, v in old.items():
            jax.config.update(n, v)
        cc.reset_cache()
