"""Google Speech Commands (v0.02, tfds `speech_commands`) as the GLE seed's log-mel sequences.

The seed (`unibe-cns/gle-code`, `data/gsc/get_data.py`, `experiments/gsc/gsc_mel_gle.py`) computes, per
clip of ≤ 1 s at 16 kHz, torchaudio's `MelSpectrogram(n_fft=1024, hop_length=400, n_mels=32)`, takes
log2(mel + 1e-9), standardises the clip (its own mean and unbiased std over all frames and bands) and
interpolates linearly along time by 1/dt (torch `interpolate(mode="linear")`, half-pixel centres); shorter
clips are zero-padded after that to the longest of the batch. Here, in TensorFlow (`mel_frames`,
`interpolate`):

    frames   (clips of ≤ 512 samples zero-padded to 513), reflect-pad n_fft/2 each side (torch's center=True), periodic Hann window, |STFT|²
             (`tf.signal.stft`): 1 + ⌊len/400⌋ frames, 41 for a full clip
    mel      `tf.signal.linear_to_mel_weight_matrix(32, 513, 16000, 0, 8000)`: HTK mel scale as torchaudio's
             default, but triangles linear in mel (torchaudio: linear in Hz) and the DC bin dropped
    log      log2(mel + 1e-9), then (x − mean) / std (unbiased) over the clip
    time     ×20 (dt 0.05) by linear interpolation with half-pixel centres: 41 frames → 820 dt steps,
             zero-padded to `steps` (820) for shorter clips

KW12 labels (tfds's order: the ten words, `_silence_`, `_unknown_`). tfds's train / validation splits are
the dataset's standard lists (validation_list.txt, testing_list.txt), which the TF1 hash split the seed
uses produced; like the seed, each split keeps every keyword clip, a seeded random ⌈10 %⌉ of the keyword
count of `_unknown_` clips and ⌊10 %⌋ of that total of `_silence_` clips (tfds cuts these from the
background-noise recordings; the seed uses constant 1e-9 clips, noise-mixed in training). Not done here:
the seed's training augmentation (background noise mixed into 80 % of the clips, ±100 ms shifts) and its
class-balanced sampling with replacement.

The standardised log-mel frames (41 per clip) are cached as .npz in `bpfree.datasets.cache` (≈200 MB for
the training split); the ×20 interpolation runs in the tf.data pipeline.
"""

import math

import numpy as np
import tensorflow as tf

from bpfree.datasets import cache, tfds_source
from bpfree.datasets.errors import DatasetError

SAMPLE_RATE = 16000
WORDS = ("down", "go", "left", "no", "off", "on", "right", "stop", "up", "yes")
LABELS = WORDS + ("_silence_", "_unknown_")  # tfds's ClassLabel order
SILENCE, UNKNOWN = LABELS.index("_silence_"), LABELS.index("_unknown_")
SPLITS = {"train": "train", "validation": "validation", "test": "test"}
N_FFT, HOP, N_MELS, LOG_EPS = 1024, 400, 32, 1e-9
MAX_FRAMES = 1 + SAMPLE_RATE // HOP  # 41


def mel_matrix(n_mels=N_MELS, n_fft=N_FFT):
    """(n_fft/2 + 1, n_mels) mel weights, `tf.signal.linear_to_mel_weight_matrix` from 0 Hz to Nyquist."""
    return tf.signal.linear_to_mel_weight_matrix(n_mels, n_fft // 2 + 1, SAMPLE_RATE, 0.0, SAMPLE_RATE / 2)


def mel_frames(audio, n_mels=N_MELS, n_fft=N_FFT, hop=HOP):
    """One clip (samples,) (int16 or float; ≤ 1 s used) → standardised log2-mel frames (1 + ⌊len/hop⌋, n_mels)."""
    audio = tf.convert_to_tensor(audio)
    x = tf.cast(audio, tf.float32)
    if audio.dtype == tf.int16:
        x = x / 32768.0  # torchaudio loads wav as float in [−1, 1)
    x = x[:SAMPLE_RATE]
    x = tf.pad(x, [[0, tf.maximum(n_fft // 2 + 1 - tf.shape(x)[0], 0)]])  # reflect needs > n_fft/2 samples
    x = tf.pad(x, [[n_fft // 2, n_fft // 2]], mode="REFLECT")
    spec = tf.signal.stft(x, frame_length=n_fft, frame_step=hop, fft_length=n_fft,
                          window_fn=tf.signal.hann_window, pad_end=False)
    power = tf.square(tf.abs(spec))
    log_mel = tf.math.log(tf.matmul(power, mel_matrix(n_mels, n_fft)) + LOG_EPS) / math.log(2.0)
    mean = tf.reduce_mean(log_mel)
    n = tf.cast(tf.size(log_mel), tf.float32)
    std = tf.sqrt(tf.reduce_sum(tf.square(log_mel - mean)) / tf.maximum(n - 1.0, 1.0))
    return (log_mel - mean) / std


def interpolate(frames, length, factor, steps):
    """The first `length` of `frames` (F, bands) resampled ×`factor` along time as torch's
    `interpolate(mode="linear", align_corners=False)`, zero-padded to `steps` rows."""
    length = tf.cast(length, tf.int32)
    out_len = length * factor
    i = tf.cast(tf.range(out_len), tf.float32)
    src = tf.maximum((i + 0.5) / float(factor) - 0.5, 0.0)
    lo = tf.minimum(tf.cast(tf.floor(src), tf.int32), length - 1)
    hi = tf.minimum(lo + 1, length - 1)
    w = (src - tf.cast(lo, tf.float32))[:, None]
    out = tf.gather(frames, lo) * (1.0 - w) + tf.gather(frames, hi) * w
    out = out[:steps]
    return tf.pad(out, [[0, steps - tf.shape(out)[0]], [0, 0]])


def select_kw12(labels, seed, unknown_fraction=0.1, silence_fraction=0.1):
    """Indices of one split as the seed's TF1 index: every keyword, ⌈f·n_kw⌉ random unknowns, then
    ⌊f·(n_kw + n_unknown)⌋ silence clips (cycled if the split has fewer), in a seeded random order."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    words = np.flatnonzero(labels < len(WORDS))
    unknown = rng.permutation(np.flatnonzero(labels == UNKNOWN))[: math.ceil(len(words) * unknown_fraction)]
    n_silence = int((len(words) + len(unknown)) * silence_fraction)
    silence = rng.permutation(np.flatnonzero(labels == SILENCE))
    silence = np.resize(silence, n_silence) if len(silence) else silence
    return rng.permutation(np.concatenate([words, unknown, silence]).astype(np.int64))


def load_frames(split, *, seed=0, data_dir=None, download=False):
    """(frames (N, 41, 32) float32, lengths (N,) int32, labels (N,) int64) of a KW12 split (module docstring),
    computed once from tfds and cached."""
    import tensorflow_datasets as tfds

    if split not in SPLITS:
        raise DatasetError(f"Invalid speech_commands split {split!r}; valid: {', '.join(SPLITS)}.")
    where = tfds_source.data_dir(data_dir)

    def build():
        try:
            ds = tfds.load("speech_commands", split=SPLITS[split], as_supervised=True, data_dir=where,
                           download=download)
        except Exception as e:
            raise DatasetError(tfds_source._not_prepared_message("speech_commands", where, e)) from None
        labels = np.array([int(y) for y in tfds.as_numpy(ds.map(lambda a, y: y))], np.int64)
        keep = select_kw12(labels, seed)
        frames = np.zeros((len(labels), MAX_FRAMES, N_MELS), np.float32)
        lengths = np.zeros(len(labels), np.int32)
        feats = ds.map(lambda a, y: mel_frames(a), num_parallel_calls=tf.data.AUTOTUNE)
        for i, f in enumerate(tfds.as_numpy(feats)):
            lengths[i] = min(len(f), MAX_FRAMES)
            frames[i, : lengths[i]] = f[: lengths[i]]
        if not len(labels):
            raise DatasetError(f"tfds speech_commands split {split!r} is empty in {where}.")
        return {"frames": frames[keep], "lengths": lengths[keep], "labels": labels[keep]}

    key = {"set": "speech_commands", "split": split, "seed": int(seed), "data_dir": where, "n_fft": N_FFT,
           "hop": HOP, "n_mels": N_MELS, "version": 1}
    arrays = cache.cached("gsc_kw12", key, build)
    return arrays["frames"], arrays["lengths"], arrays["labels"]


def pipeline(frames, lengths, labels, *, factor=20, steps=None, batch_size=256, shuffle_seed=None):
    """A tf.data pipeline of (x (batch, steps, 32), y (batch,)): frames interpolated ×`factor`, padded or cut
    to `steps` (default: 41 × factor); shuffled each epoch from `shuffle_seed` when given."""
    steps = int(steps or MAX_FRAMES * factor)
    ds = tf.data.Dataset.from_tensor_slices((frames, lengths, labels))
    if shuffle_seed is not None:
        ds = ds.shuffle(len(labels), seed=shuffle_seed, reshuffle_each_iteration=True)
    ds = ds.map(lambda f, n, y: (interpolate(f, n, factor, steps), y), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def synthetic_frames(n, seed=0):
    """`n` random clips (white noise at random loudness, random KW12 labels) through `mel_frames`: the
    shapes and statistics of the real features, for smoke runs without the data."""
    rng = np.random.default_rng(seed)
    audio = (rng.standard_normal((n, SAMPLE_RATE)) * rng.uniform(0.01, 0.3, (n, 1))).astype(np.float32)
    frames = tf.map_fn(mel_frames, tf.constant(audio)).numpy()
    return frames, np.full(n, frames.shape[1], np.int32), rng.integers(0, len(LABELS), n).astype(np.int64)
