"""Google Speech Commands (the GLE seed's GSC experiment): features against numpy, the mocked tfds pipeline,
the network, one training step, the experiment's records and resume, and its CLI's refusals."""

import math

import numpy as np
import pytest


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BPFREE_CACHE_DIR", str(tmp_path / "cache"))


def numpy_mel_matrix(n_mels, n_bins, sr, lo, hi):
    """HTK mel triangles, linear in mel, DC row zero: what `tf.signal.linear_to_mel_weight_matrix` documents."""
    mel = lambda f: 1127.0 * np.log1p(np.asarray(f, np.float64) / 700.0)  # noqa: E731
    bins = mel(np.linspace(0.0, sr / 2, n_bins)[1:])[:, None]
    edges = np.linspace(mel(lo), mel(hi), n_mels + 2)
    left, centre, right = edges[:-2], edges[1:-1], edges[2:]
    w = np.maximum(0.0, np.minimum((bins - left) / (centre - left), (right - bins) / (right - centre)))
    return np.vstack([np.zeros((1, n_mels)), w])


def numpy_features(clip, n_fft=1024, hop=400, n_mels=32):
    """The seed's log-mel recipe (torch center=True framing, periodic Hann, |X|², log2(mel + 1e-9),
    clip standardisation with the unbiased std), written in numpy."""
    x = clip.astype(np.float64) / 32768.0 if clip.dtype == np.int16 else clip.astype(np.float64)
    x = x[:16000]
    if len(x) < n_fft // 2 + 1:
        x = np.concatenate([x, np.zeros(n_fft // 2 + 1 - len(x))])
    x = np.pad(x, n_fft // 2, mode="reflect")
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    frames = np.stack([x[i: i + n_fft] * window for i in range(0, len(x) - n_fft + 1, hop)])
    power = np.abs(np.fft.rfft(frames, axis=-1)) ** 2
    log_mel = np.log2(power @ numpy_mel_matrix(n_mels, n_fft // 2 + 1, 16000, 0.0, 8000.0) + 1e-9)
    return (log_mel - log_mel.mean()) / log_mel.std(ddof=1)


def numpy_interpolate(frames, factor, steps):
    """torch.nn.functional.interpolate(mode="linear", align_corners=False) along time, zero-padded."""
    n = len(frames)
    src = np.maximum((np.arange(n * factor) + 0.5) / factor - 0.5, 0.0)
    lo = np.minimum(np.floor(src).astype(int), n - 1)
    hi = np.minimum(lo + 1, n - 1)
    w = (src - lo)[:, None]
    out = frames[lo] * (1 - w) + frames[hi] * w
    return np.concatenate([out, np.zeros((steps - len(out), frames.shape[1]))])[:steps]


def test_mel_features_match_numpy_on_a_full_clip_and_interpolate_as_torch():
    from bpfree.datasets import speech_commands as sc

    rng = np.random.default_rng(0)
    clip = (rng.standard_normal(16000) * 3000 * np.sin(np.linspace(0, 20, 16000))).astype(np.int16)
    got = sc.mel_frames(clip).numpy()
    assert got.shape == (41, 32)
    np.testing.assert_allclose(got, numpy_features(clip), atol=2e-3)
    quiet = (clip // 64).astype(np.int16)  # int16 counts are scaled by 1/32768 first, as torchaudio loads them:
    quiet[:8000] = 0  # against the 1e-9 of the silent frames, the scale survives the standardisation
    np.testing.assert_allclose(sc.mel_frames(quiet).numpy(), numpy_features(quiet), atol=2e-3)
    assert not np.allclose(sc.mel_frames(quiet).numpy(), numpy_features(quiet.astype(np.float32)), atol=2e-3)
    short = got[:30]
    np.testing.assert_allclose(sc.interpolate(short, 30, 20, 820).numpy(), numpy_interpolate(short, 20, 820),
                               atol=1e-5)
    assert sc.interpolate(got, 41, 20, 820).shape == (820, 32)


def test_kw12_selection_keeps_the_words_and_a_tenth_unknown_then_a_tenth_silence():
    from bpfree.datasets import speech_commands as sc

    labels = np.array([0] * 50 + [9] * 45 + [sc.UNKNOWN] * 300 + [sc.SILENCE] * 7)
    keep = sc.select_kw12(labels, seed=3)
    picked = labels[keep]
    assert (picked < 10).sum() == 95
    assert (picked == sc.UNKNOWN).sum() == math.ceil(9.5) == 10
    assert (picked == sc.SILENCE).sum() == int(0.1 * 105) == 10  # 7 clips, cycled
    np.testing.assert_array_equal(keep, sc.select_kw12(labels, seed=3))
    assert not np.array_equal(keep, sc.select_kw12(labels, seed=4))


def test_mocked_tfds_pipeline_shapes_labels_and_features():
    import tensorflow_datasets as tfds

    from bpfree.datasets import speech_commands as sc

    with tfds.testing.mock_data(num_examples=30):
        raw = list(tfds.as_numpy(tfds.load("speech_commands", split="validation", as_supervised=True)))
        frames, lengths, labels = sc.load_frames("validation", seed=1)
    raw_labels = np.array([int(y) for _, y in raw])
    keep = sc.select_kw12(raw_labels, seed=1)
    np.testing.assert_array_equal(labels, raw_labels[keep])
    assert frames.shape == (len(keep), 41, 32) and set(labels) <= set(range(12))
    i = int(keep[0])
    want = numpy_features(raw[i][0])
    assert lengths[0] == len(want)
    np.testing.assert_allclose(frames[0, : lengths[0]], want, atol=2e-3)
    assert not frames[0, lengths[0]:].any()
    x, y = next(iter(sc.pipeline(frames, lengths, labels, batch_size=4)))
    assert x.shape == (4, 820, 32) and y.shape == (4,)
    np.testing.assert_allclose(x[0].numpy(), numpy_interpolate(frames[0, : lengths[0]], 20, 820), atol=1e-5)


def test_network_is_the_seeds_and_one_training_step_on_mocked_data_learns():
    import tensorflow_datasets as tfds

    from bpfree import optimizers
    from bpfree.datasets import speech_commands as sc
    from bpfree.experiments import gsc

    full = gsc.gsc_network(batch_size=2)
    assert sum(int(np.prod(v.shape)) for v in full.trainable_variables) == 1_160_262
    hidden = full.gle_layers[1]
    np.testing.assert_allclose(hidden.tau_m.numpy()[::150], gsc.TAU_M)
    np.testing.assert_allclose(hidden.tau_r.numpy()[::150], gsc.TAU_R)
    assert [l.activation for l in full.gle_layers] == ["linear", "tanh", "tanh", "linear"]
    np.testing.assert_allclose(full.gle_layers[-1].tau_r.numpy(), 2.4)
    assert gsc.LR == pytest.approx(1.953125e-5)

    with tfds.testing.mock_data(num_examples=12):
        data = sc.load_frames("train", seed=0)
    x, y = next(iter(sc.pipeline(*data, steps=30, batch_size=4)))
    model = gsc.gsc_network(block_size=3, batch_size=4)
    model.compile(optimizer=optimizers.get("torch_adam", 1e-3, epsilon=1e-8), metrics=["error_rate"])
    before = [v.numpy().copy() for v in model.trainable_variables]
    logs = model.train_on_batch(x, y, return_dict=True)
    assert np.isfinite(logs["loss"])
    assert all(not np.array_equal(b, v.numpy()) for b, v in zip(before, model.trainable_variables))


def test_experiment_writes_records_figure_model_and_resumes(tmp_path):
    from bpfree import results
    from bpfree.experiments import gsc

    def config(epochs):
        return gsc.GSCConfig(epochs=epochs, synthetic=8, batch_size=4, block_size=2, max_steps=20)

    data = gsc.run(config(1), str(tmp_path), log=lambda *a: None)
    assert data["status"] == "completed" and data["hparams"]["steps"] == 20
    assert (tmp_path / "gle_gsc_seed0.png").stat().st_size > 0
    assert {"val_acc", "val_loss", "loss", "epoch_seconds"} <= set(results.load(str(tmp_path)).columns)
    lines = []
    resumed = gsc.run(config(2), str(tmp_path), log=lines.append)
    assert len(resumed["history"]["val_acc"]) == 2 and any("Resuming" in line for line in lines)


@pytest.mark.parametrize("argv, message", [
    (["--block_size=0"], "error: Invalid block_size 0: a positive integer."),
    (["--optimizer=sgd"], "error: Unknown --optimizer 'sgd'; valid: adam, torch_adam, uncorrected_adam."),
    (["--n_mels=40"], "error: Unknown command line flag 'n_mels'"),
])
def test_cli_refuses_bad_input_with_one_line_and_exit_2(tmp_path, capsys, argv, message):
    from bpfree.experiments import gsc

    assert gsc.main(["gsc", f"--exp_dir={tmp_path / 'x'}", *argv]) == 2
    assert capsys.readouterr().err.splitlines() == [message]
    assert not (tmp_path / "x").exists()


def test_missing_data_is_one_line(tmp_path, capsys, monkeypatch):
    from bpfree.experiments import gsc

    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "nothing"))
    assert gsc.main(["gsc", f"--exp_dir={tmp_path / 'x'}", "--epochs=1"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("error: tfds dataset 'speech_commands' could not be loaded")
    assert not (tmp_path / "x").exists()
