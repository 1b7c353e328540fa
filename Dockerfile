# GPU image for bpfree searches: the official TensorFlow GPU base, the locked environment installed
# system-wide, train.bash as the entry point.
#   docker build -t bpfree .
#   docker run --gpus all -v "$PWD/data:/workspace/bpfree/data" -v bpfree-cache:/cache bpfree data/quickstart
# Experiments go to data/ (mounted from the host); datasets are cached in /cache (TFDS_DATA_DIR for tfds sets,
# BPFREE_CACHE_DIR for the embedded ones), a named volume, so a second run downloads nothing.
# `import bpfree` registers every class Keras needs to load a saved model (layers, models, rules, optimizers,
# metrics): in the image, `python3 -c "import bpfree, keras; keras.models.load_model('data/x.keras')"`.
# .dockerignore keeps .venv/ and data/ out of the build context (.git stays: train.bash archives the tracked
# files of the search it runs). tests/test_dockerfile.py replays these install steps and checks that the base
# image's tag is the TensorFlow version Pipfile.lock pins; the build checks it again below.
FROM tensorflow/tensorflow:2.21.0-gpu

ENV PIP_NO_CACHE_DIR=1 \
    PIPENV_VERBOSITY=-1 \
    BPFREE_SYSTEM_PYTHON=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    TFDS_DATA_DIR=/cache/tensorflow_datasets \
    BPFREE_CACHE_DIR=/cache/bpfree

# tcmalloc (train.bash preloads it when present), xz for the source archive, git for the tracked files.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgoogle-perftools4 xz-utils git \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /workspace/bpfree
COPY Pipfile Pipfile.lock ./
# The base image must carry the lock's TensorFlow (else pip would install a second copy over it).
RUN python3 -c "import importlib.metadata as m, json; \
locked = json.load(open('Pipfile.lock'))['default']['tensorflow']['version'].lstrip('='); \
found = m.version('tensorflow'); \
assert found == locked, f'base image has TensorFlow {found}, Pipfile.lock pins {locked}'"
# The lock, exported as pinned requirements (pipenv's --system --deploy would also insist on the
# lock's exact Python minor version, which the base image decides).
RUN python3 -m pip install pipenv \
    && pipenv requirements --dev > /tmp/requirements.txt \
    && python3 -m pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

COPY . .
RUN python3 -m pip install --no-deps -e .
VOLUME ["/cache"]

ENTRYPOINT ["./train.bash"]
CMD ["data/quickstart"]
