# GPU image for bpfree searches: the official TensorFlow GPU base, the locked environment installed
# system-wide, train.bash as the entry point.
#   docker build -t bpfree .
#   docker run --gpus all -v "$PWD/data:/workspace/bpfree/data" bpfree data/mnist --dataset mnist
# tests/test_dockerfile.py replays these install steps so the file cannot silently rot.
FROM tensorflow/tensorflow:2.21.0-gpu

ENV PIP_NO_CACHE_DIR=1 \
    PIPENV_VERBOSITY=-1 \
    BPFREE_SYSTEM_PYTHON=1 \
    TF_CPP_MIN_LOG_LEVEL=2

# tcmalloc (train.bash preloads it when present), xz for the source archive, git for provenance.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgoogle-perftools4 xz-utils git \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /workspace/bpfree
COPY Pipfile Pipfile.lock ./
# The lock, exported as pinned requirements (pipenv's --system --deploy would also insist on the
# lock's exact Python minor version, which the base image decides).
RUN python3 -m pip install pipenv \
    && pipenv requirements --dev > /tmp/requirements.txt \
    && python3 -m pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

COPY . .
RUN python3 -m pip install --no-deps -e .

ENTRYPOINT ["./train.bash"]
CMD ["data/quickstart"]
