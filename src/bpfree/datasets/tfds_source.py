"""tensorflow-datasets image classification sets, read into numpy through `tfds.load`.

Prepared data lives where tfds keeps it (`data_dir`, else $TFDS_DATA_DIR, else ~/tensorflow_datasets).
Offline, a dataset that was never prepared fails with one `DatasetError` saying where tfds looked and
how to prepare it by hand — within seconds: before tfds downloads (and retries each file for minutes
with backoff), one connection to its download hosts (or to the proxy in $HTTP(S)_PROXY) is tried.
"""

import os
import socket
import threading
import time
import urllib.parse
import urllib.request

import numpy as np

from bpfree.datasets.errors import DatasetError

# Our short names → tfds names, and how our train/test map onto each set's tfds splits.
ALIASES = {
    "mnist": "mnist",
    "fmnist": "fashion_mnist",
    "fashion_mnist": "fashion_mnist",
    "kmnist": "kmnist",
    "cifar10": "cifar10",
    "cifar100": "cifar100",
    "eurosat": "eurosat/rgb",
}
SPLITS = {"eurosat/rgb": {"train": "train[:80%]", "test": "train[80%:]"}}  # EuroSAT ships one split
PROBE_TIMEOUT = 5.0  # seconds for one connection to a download host (all hosts are tried at once)
IDX_SETS = ("mnist", "fashion_mnist", "kmnist")  # tfds names with a standard IDX release (`datasets.offline`)
# Split sizes for info() without preparing (tfds knows them only once the data is there).
KNOWN_SIZES = {
    "mnist": {"train": 60000, "test": 10000},
    "fashion_mnist": {"train": 60000, "test": 10000},
    "kmnist": {"train": 60000, "test": 10000},
    "cifar10": {"train": 50000, "test": 10000},
    "cifar100": {"train": 50000, "test": 10000},
    "eurosat/rgb": {"train": 21600, "test": 5400},
}


# Input shape and classes of the sets with an IDX release, so that info() never builds a tfds builder for them
# (which may look for metadata on the network): the same values tfds gives (tests/test_datasets.py).
KNOWN_FEATURES = {"mnist": ((28, 28, 1), 10), "fashion_mnist": ((28, 28, 1), 10), "kmnist": ((28, 28, 1), 10)}


def data_dir(explicit=None):
    return explicit or os.environ.get("TFDS_DATA_DIR") or os.path.join(os.path.expanduser("~"), "tensorflow_datasets")


def describe(tfds_name, directory=None):
    """(input_shape, num_classes, split sizes or None) from the builder's metadata, reading no data."""
    import tensorflow_datasets as tfds

    if tfds_name in KNOWN_FEATURES:
        return (*KNOWN_FEATURES[tfds_name], KNOWN_SIZES[tfds_name])

    try:
        builder = tfds.builder(tfds_name, data_dir=data_dir(directory))
    except Exception as e:  # tfds raises several types for unknown names, with every name it knows
        raise DatasetError(f"tfds has no dataset {tfds_name!r} ({_first_line(e)}); valid: a name of "
                           "tfds.list_builders() (with /CONFIG where it has several), e.g. tfds:svhn_cropped.") from None
    image_key, label_key = builder.info.supervised_keys or ("image", "label")
    features = builder.info.features
    if image_key not in features or label_key not in features or not hasattr(features[label_key], "num_classes"):
        raise DatasetError(f"tfds dataset {tfds_name!r} is not an image classification set (features: "
                           f"{' '.join(str(features).split())}); valid: a set whose supervised keys are an image "
                           "and a class label.")
    sizes = KNOWN_SIZES.get(tfds_name)
    if sizes is None and builder.info.splits:
        sizes = {k: v.num_examples for k, v in builder.info.splits.items()}
    return tuple(features[image_key].shape), int(features[label_key].num_classes), sizes


def load(tfds_name, split, directory=None, download=True):
    """(x uint8 (N, H, W, C), y int64 (N,)) of one split.

    Setting BPFREE_TFDS_DOWNLOAD=0 in the environment forbids downloads everywhere (offline machines,
    `tfds.testing.mock_data` runs).
    """
    import tensorflow_datasets as tfds

    download = download and os.environ.get("BPFREE_TFDS_DOWNLOAD", "1") != "0"

    tfds_split = SPLITS.get(tfds_name, {}).get(split, split)
    where = data_dir(directory)
    if download:
        try:
            builder = tfds.builder(tfds_name, data_dir=where)
            urls = [] if builder.is_prepared() else list(builder.url_infos or ())
        except Exception:  # tfds.load below reports it
            urls = []
        unreachable = _unreachable(urls)
        if unreachable:
            raise DatasetError(_not_prepared_message(tfds_name, where, unreachable))
    try:
        ds = tfds.load(tfds_name, split=tfds_split, as_supervised=True, data_dir=where, download=download)
    except Exception as e:  # offline download errors, missing data, unknown splits
        raise DatasetError(_not_prepared_message(tfds_name, where, e)) from None
    xs, ys = [], []
    for x, y in tfds.as_numpy(ds.batch(4096)):
        xs.append(x)
        ys.append(y)
    if not xs:
        raise DatasetError(f"tfds dataset {tfds_name!r} split {tfds_split!r} is empty in {where}.")
    return np.concatenate(xs), np.concatenate(ys).astype(np.int64)


def _unreachable(urls, timeout=PROBE_TIMEOUT):
    """None if one of the hosts of `urls` (through the environment's proxy, if any) accepts a connection
    within `timeout` seconds (or there are no urls); else why not, in one line."""
    targets = {}
    proxies = urllib.request.getproxies()
    for url in urls:
        parts = urllib.parse.urlsplit(url)
        if not parts.hostname or parts.scheme not in ("http", "https", "ftp"):
            return None  # a scheme we cannot probe (gs://, ...): let tfds try
        proxy = proxies.get(parts.scheme) and not urllib.request.proxy_bypass(parts.hostname)
        if proxy:
            p = urllib.parse.urlsplit(proxies[parts.scheme])
            target = (p.hostname, p.port or (443 if p.scheme == "https" else 80), f"proxy {proxies[parts.scheme]}")
        else:
            target = (parts.hostname, parts.port or {"https": 443, "ftp": 21}.get(parts.scheme, 80), parts.hostname)
        targets[target[:2]] = target[2]
    if not targets:
        return None
    errors, reached = {}, threading.Event()

    def probe(host, port, label):
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            reached.set()
        except OSError as e:
            errors[label] = e.strerror or str(e) or type(e).__name__

    threads = [threading.Thread(target=probe, args=(*hp, label), daemon=True) for hp, label in targets.items()]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout + 1.0
    for t in threads:  # DNS lookups have no timeout of their own: a thread still resolving counts as failed
        t.join(max(0.0, deadline - time.monotonic()))
    if reached.is_set():
        return None
    label = sorted(targets.values())[0]
    return f"cannot reach {label}: {errors.get(label, f'no answer in {timeout:g} s')}"


def _first_line(error):
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def _not_prepared_message(tfds_name, where, error):
    first_line = _first_line(error)
    return (
        f"tfds dataset {tfds_name!r} could not be loaded: it is not prepared in {where} "
        f"(TFDS_DATA_DIR={os.environ.get('TFDS_DATA_DIR', '<unset>')}) and could not be downloaded here "
        f"({first_line}). Prepare it by hand on a machine with network access: "
        f"`python -c \"import tensorflow_datasets as tfds; tfds.builder('{tfds_name}', data_dir='DIR').download_and_prepare()\"`, "
        f"then copy DIR/{tfds_name.split('/')[0]} into {where} (or point TFDS_DATA_DIR at DIR)"
        + (f"; or set BPFREE_DATA_DIR to a directory holding {tfds_name}/ with its four IDX files (README: Offline)."
           if tfds_name in IDX_SETS else ".")
    )
