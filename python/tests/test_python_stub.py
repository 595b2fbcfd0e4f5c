"""The .pyi stub declares every public name of aria._core, and the package re-exports them."""
import ast
import pathlib

import aria
from aria import _core


def test_stub_covers_the_module():
    stub = pathlib.Path(aria.__file__).with_name("_core.pyi")
    tree = ast.parse(stub.read_text())
    declared = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    public = {n for n in dir(_core) if not n.startswith("_")}
    assert public - declared == set(), "names missing from _core.pyi"
    assert declared - public == set(), "names in _core.pyi the module lacks"
    for name in public:
        assert getattr(aria, name) is getattr(_core, name)
    assert (stub.parent / "py.typed").exists()
