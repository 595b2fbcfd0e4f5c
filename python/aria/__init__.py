"""aria: a C++20/CUDA tensor engine that fine-tunes GPT-2 on task sequences (continual learning).

The compiled part is aria._core (python/src); this package re-exports it and adds the pure-Python
helpers: run_sequence (the protocol of `aria continual` for one method and seed), read_config, and
L2ToPrevious (a continual-learning method written in Python). See README.md "Python".
"""
import os as _os

# The CLI's OpenMP wait policy (tools/aria/environment.cpp: a short spin, then sleep), set before
# _core loads libgomp, which reads it once at load: with libgomp's default, a Python process ran a
# continual run 1.7x slower than the CLI on an idle 2-core machine (docs/perf.md). A policy the user
# set wins; a libgomp already loaded by another module (torch imported first) keeps its own.
if "OMP_WAIT_POLICY" not in _os.environ and "GOMP_SPINCOUNT" not in _os.environ:
    _os.environ["GOMP_SPINCOUNT"] = "10000"

from ._core import *  # noqa: F401,F403  (the module's names: Tensor, GPT2, ContinualTrainer, ...)
from ._core import __doc__ as _core_doc  # noqa: F401
from .continual import read_config, run_sequence  # noqa: F401
from .methods import L2ToPrevious  # noqa: F401
