"""aria: a C++20/CUDA tensor engine that fine-tunes GPT-2 on task sequences (continual learning).

The compiled part is aria._core (python/src); this package re-exports it and adds the pure-Python
helpers: run_sequence (the protocol of `aria continual` for one method and seed), read_config, and
L2ToPrevious (a continual-learning method written in Python). See README.md "Python".
"""
from ._core import *  # noqa: F401,F403  (the module's names: Tensor, GPT2, ContinualTrainer, ...)
from ._core import __doc__ as _core_doc  # noqa: F401
from .continual import read_config, run_sequence  # noqa: F401
from .methods import L2ToPrevious  # noqa: F401
