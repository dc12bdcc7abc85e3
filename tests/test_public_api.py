"""Every public function and class documents itself, and the DESIGN's API names exist."""
import inspect

import pytest

import jadv

SUBPACKAGES = ["data", "models", "attacks", "train", "analysis"]


def _public(module):
    names = getattr(module, "__all__", None)
    assert names, f"jadv.{module.__name__} must list its public API in __all__"
    return [(n, getattr(module, n)) for n in names]


@pytest.mark.parametrize("sub", SUBPACKAGES)
def test_every_public_callable_has_a_docstring(sub):
    module = getattr(jadv, sub)
    missing = [n for n, obj in _public(module)
               if (inspect.isfunction(obj) or inspect.isclass(obj)) and not (obj.__doc__ or "").strip()]
    assert not missing, f"jadv.{sub}: public names without a docstring: {missing}"


@pytest.mark.parametrize("sub, names", [
    ("data", ["load", "epoch_batches", "random_crop_flip", "tsipras", "binary_task"]),
    ("models", ["get", "init_variables"]),
    ("train", ["train_and_evaluate", "make_train_step", "TrainState", "Checkpointer", "make_mesh"]),
])
def test_design_api_names_exist(sub, names):
    module = getattr(jadv, sub)
    assert [n for n in names if not hasattr(module, n)] == []


@pytest.mark.parametrize("sub", SUBPACKAGES)
def test_every_public_function_is_type_annotated(sub):
    """Arguments and return of each public function carry type hints (jax.Array for arrays out,
    jax.typing.ArrayLike for arrays in), and the hints resolve."""
    import typing

    module = getattr(jadv, sub)
    missing = []
    for n, obj in _public(module):
        if not inspect.isfunction(obj):
            continue
        sig = inspect.signature(obj)
        args = [p for p, v in sig.parameters.items()
                if v.annotation is inspect.Parameter.empty and v.kind not in (v.VAR_POSITIONAL, v.VAR_KEYWORD)]
        if args or sig.return_annotation is inspect.Signature.empty:
            missing.append(f"{n}({', '.join(args)}){'' if args else ' return'}")
        typing.get_type_hints(obj)
    assert not missing, f"jadv.{sub}: public functions without type hints: {missing}"
