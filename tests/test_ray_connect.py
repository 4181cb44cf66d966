"""tools.ray_runner.connect holds one cluster per process: a second, different address is refused
with what is connected, what was asked and the way out. Ray itself is not started: a stand-in
module records the calls (the real connection is tested against a local head in test_ray_jobs)."""

from __future__ import annotations

import sys
from types import SimpleNamespace
from typing import Any

import pytest

import tools.ray_runner as ray_runner
from tools.ray_runner import RayUnavailableError, connect


@pytest.fixture
def fake_ray(monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    inits: list[dict[str, Any]] = []
    ray = SimpleNamespace(inits=inits)
    ray.is_initialized = lambda: bool(inits)
    ray.init = lambda **kw: inits.append(kw)
    monkeypatch.setitem(sys.modules, "ray", ray)
    monkeypatch.setattr(ray_runner, "_connected", None, raising=False)
    monkeypatch.setattr(ray_runner, "_check_reachable", lambda address: None)
    return ray


def test_the_same_address_again_reuses_the_connection(fake_ray: SimpleNamespace) -> None:
    assert connect("10.0.0.1:6379") is fake_ray
    assert connect("10.0.0.1:6379") is fake_ray
    assert [kw["address"] for kw in fake_ray.inits] == ["10.0.0.1:6379"]


def test_another_address_once_connected_is_refused_saying_both_and_the_way_out(fake_ray: SimpleNamespace) -> None:
    connect("10.0.0.1:6379")
    with pytest.raises(RayUnavailableError) as exc:
        connect("10.0.0.2:6379")
    said = str(exc.value)
    assert "connected to the Ray cluster at '10.0.0.1:6379'" in said and "'10.0.0.2:6379' was asked for" in said
    assert "in a process of its own" in said
    assert len(fake_ray.inits) == 1, "no second init"


def test_ray_started_by_someone_else_is_used_as_it_is(fake_ray: SimpleNamespace) -> None:
    fake_ray.inits.append({"address": "local"})  # e.g. a library's own ray.init()
    assert connect("10.0.0.2:6379") is fake_ray and len(fake_ray.inits) == 1
