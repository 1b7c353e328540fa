"""The MNIST-1D baselines (MLP, TCN, GRU by BP/BPTT) and the 42k E2E GLE net: PyTorch's parameter counts,
a training step, a save/load round trip, and the experiment's refusals."""

import numpy as np
import pytest

# PyTorch's parameter counts of the MNIST-1D package's MLPBase / ConvBase / GRUBase at length L:
# MLP L·100+100 + 100·100+100 + 100·10+10; TCN 1·25·5+25 + 2·(25·25·3+25) + F·10+10 with F = 25 · (length after
# three stride-2 convs); GRU 2 directions × (3·6·1 + 3·6·6 + 2·3·6) + 2·6·L·10 + 10.
COUNTS = {("mlp", 40): 15_210, ("mlp", 360): 47_210, ("tcn", 40): 5_210, ("tcn", 360): 15_210,
          ("gru", 40): 5_134, ("gru", 360): 43_534}


@pytest.mark.parametrize("name, length", sorted(COUNTS))
def test_baseline_builds_with_pytorchs_parameter_count_trains_a_step_and_round_trips(name, length, tmp_path):
    import keras

    from bpfree import metrics, optimizers
    from bpfree.experiments import mnist1d_baselines

    model = mnist1d_baselines.build(name, length, seed=0)
    assert model.count_params() == COUNTS[(name, length)]
    model.compile(optimizer=optimizers.get("torch_adam", 1e-2, epsilon=1e-8),
                  loss=keras.losses.CategoricalCrossentropy(from_logits=True), metrics=[metrics.ErrorRate()])
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((8, length)).astype("float32"), keras.utils.to_categorical(rng.integers(0, 10, 8), 10)
    before = [w.copy() for w in model.get_weights()]
    model.train_on_batch(x, y)
    assert all(not np.array_equal(b, w) for b, w in zip(before, model.get_weights()))
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)


def test_seed_offsets_give_different_initial_weights_and_the_same_seed_the_same():
    from bpfree.experiments import mnist1d_baselines

    a, b, c = (mnist1d_baselines.build("gru", 40, seed=s).get_weights() for s in (0, 0, 1))
    assert all(np.array_equal(u, v) for u, v in zip(a, b))
    assert not np.array_equal(a[0], c[0])
    forward, backward = a[0], a[3]  # the two directions' input kernels
    assert not np.array_equal(forward, backward)


def test_gle_e2e_42k_is_the_seeds_42040_parameters():
    from bpfree.experiments.mnist1d import MNIST1DConfig, build_network

    model = build_network("gle_e2e_42k", seed=0, batch_size=4)
    assert sum(int(np.prod(v.shape)) for v in model.trainable_variables) == 42_040
    tau_m, tau_r = model.gle_layers[1].tau_m.numpy(), model.gle_layers[1].tau_r.numpy()
    assert (np.isclose(tau_m, 0.6).sum(), np.isclose(tau_r, 0.2).sum(), np.isclose(tau_r, 1.2).sum()) == (30, 60, 30)
    assert MNIST1DConfig(network="gle_e2e_42k").learning_rate == pytest.approx(5e-4)
    assert MNIST1DConfig().learning_rate == pytest.approx(1e-3) and MNIST1DConfig().model == "gle_e2e"
    assert MNIST1DConfig(network="gru", length=40).model == "gru_40"


def test_baseline_run_writes_a_record_per_length(tmp_path):
    from bpfree import results
    from bpfree.experiments.mnist1d import MNIST1DConfig, run

    data = run(MNIST1DConfig(network="tcn", length=40, epochs=2, train_subset=200, test_subset=100), str(tmp_path),
               log=lambda *a: None)
    assert data["status"] == "completed" and data["hparams"]["lr"] == 1e-2 and data["hparams"]["length"] == 40
    frame = results.load(str(tmp_path))
    assert set(frame["trial_id"]) == {"tcn_40"} and len(frame) == 2


@pytest.mark.parametrize("argv, message", [
    (["--network=lstm"], "error: Unknown --network 'lstm'; valid: gle_e2e, static_lagnet, gle_e2e_42k, mlp, tcn, gru."),
    (["--network=gle_e2e", "--length=40"],
     "error: --length 40 is for the baselines (mlp, tcn, gru); the GLE nets read 360 steps."),
    (["--network=mlp", "--length=100"], "error: Invalid --length 100; valid: 360, 40."),
    (["--network=mlp", "--static_lagnet"], "error: --static_lagnet contradicts --network mlp; give one of them."),
])
def test_cli_refuses_bad_networks_with_one_line_and_exit_2(tmp_path, capsys, argv, message):
    from bpfree.experiments import mnist1d

    assert mnist1d.main(["mnist1d", f"--exp_dir={tmp_path / 'x'}", *argv]) == 2
    assert capsys.readouterr().err.splitlines() == [message]
    assert not (tmp_path / "x").exists()
