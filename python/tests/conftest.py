"""Shared fixtures of the Python tests (run by ctest with PYTHONPATH=<build>/python and ARIA_CLI=<build>/aria;
by hand: PYTHONPATH=build/python ARIA_CLI=build/aria python3 -m pytest python/tests)."""
import os
import pathlib
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
HF_TINY = FIXTURES / "hf_tiny"          # a 2-layer, d=32 GPT-2 of 512 tokens (transformers-made)
CLS_TINY = FIXTURES / "cls_tiny"        # two learnable two-label tasks: weather, animal
CONTINUAL_TINY = FIXTURES / "continual_tiny.json"


@pytest.fixture(scope="session")
def aria_cli():
    """The aria CLI the parity tests compare with."""
    cli = os.environ.get("ARIA_CLI", "")
    if not cli or not os.access(cli, os.X_OK):
        pytest.skip("ARIA_CLI is not set to the aria binary (ctest sets it)")
    return cli


def run_cli(cli, *args, check=True, text=True):
    r = subprocess.run([cli, *map(str, args)], capture_output=True, text=text, cwd=ROOT,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    if check and r.returncode != 0:
        raise AssertionError(f"aria {' '.join(map(str, args))} exited {r.returncode}:\n{r.stdout}\n{r.stderr}")
    return r


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    """A random 2-layer, d=64 GPT-2 with GPT-2's 50257-token vocabulary (preset tiny), saved as a
    Hugging Face folder (no vocabulary files: the bundled GPT-2 one is used, as by the CLI)."""
    import aria
    d = tmp_path_factory.mktemp("tiny-gpt2")
    aria.gpt2_random("tiny", seed=1).save(str(d))
    return d


@pytest.fixture(scope="session")
def tokenizer(tiny_dir):
    import aria
    return aria.Tokenizer.for_model(str(tiny_dir))


@pytest.fixture(scope="session")
def tiny_model(tiny_dir):
    import aria
    return aria.load_gpt2(str(tiny_dir))
