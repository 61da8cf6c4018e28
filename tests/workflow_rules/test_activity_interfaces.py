"""Workflows call activities through `activities.interfaces`; the implementations keep to those interfaces, and a
workflow worker loads no database or planning code."""

import inspect
import subprocess
import sys
import typing
from importlib import import_module
from pathlib import Path

import pytest

from activities import interfaces
from activities.registry import CLASSES
from tests.support.workflow_stubs import activities_of

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("served_by", sorted(CLASSES.values()))
def test_each_implementation_offers_exactly_its_interface_with_the_same_types(served_by):
    module, name = served_by.split(":")
    implementation, interface = getattr(import_module(module), name), getattr(interfaces, name)
    assert issubclass(implementation, interface)
    offered, promised = activities_of(implementation, inspect.isfunction), activities_of(interface, inspect.isfunction)
    assert promised, name
    assert set(offered) == set(promised), (name, set(offered) ^ set(promised))
    for activity_name, function in offered.items():
        contract = promised[activity_name]
        assert function is not contract, f"{name}.{activity_name} is not implemented"
        assert function.__qualname__.startswith(f"{name}.") and inspect.getmodule(function).__name__ == module
        assert list(inspect.signature(function).parameters) == list(inspect.signature(contract).parameters)
        assert typing.get_type_hints(function) == typing.get_type_hints(contract), f"{name}.{activity_name}"


def test_no_interface_is_left_without_an_implementation():
    declared = {name for name, member in vars(interfaces).items()
                if inspect.isclass(member) and member.__module__ == interfaces.__name__}
    assert declared == {served_by.partition(":")[2] for served_by in CLASSES.values()}


def test_a_workflow_worker_imports_no_database_or_planning_code():
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, worker, workflows; "
                               "print(sorted(m for m in ('sqlalchemy', 'asyncpg', 'numpy', 'scipy', 'services') "
                               "if m in sys.modules))"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.strip() == "[]", loaded.stdout
