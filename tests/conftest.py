"""Shared test setup: pinned seeds and thread counts so numbers are reproducible."""
from __future__ import annotations

import os
import random
from pathlib import Path

# Set before numpy and torch load their BLAS (and inherited by the tests' subprocesses and local
# Ray workers). On an AVX2-only AMD EPYC machine, MKL's automatic code-path choice made a single
# process and a Ray worker (or a torchrun rank) differ in the last bits (the stabilizer's meshes by
# ~7e-14 mm on ~100 mm coordinates; 1.4e-4 relative after the sketch test's few training steps, which amplify
# it); with a fixed branch (MKL_CBWR) and one BLAS thread both runs compute the same sums.
os.environ.setdefault("MKL_CBWR", "AVX2")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
# In CI the shared folder lies beside the clone; in a session it is ../shared too.
SHARED = REPO.parent / "shared"

# One intra-op thread: test tensors are small, where threads only add synchronisation (10x slower
# on a busy 2-core machine), and single-threaded reductions make numbers repeatable.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="session")
def builtin_model():
    """The bundled default head (ICT-FaceKit based), loaded once per test session (tests must not
    mutate it)."""
    import face3d

    return face3d.load_model("builtin")


@pytest.fixture(scope="session")
def character_model():
    """The small procedural character head, for tests that need a head but not the default one."""
    import face3d

    return face3d.load_model("character")


@pytest.fixture(scope="session")
def sketch_modeler(builtin_model):
    """The committed sketch networks on the bundled head (tests must not mutate it)."""
    from avatars.sketch.api import DEFAULT_WEIGHTS, SketchModeler

    return SketchModeler.load(DEFAULT_WEIGHTS, model=builtin_model)
