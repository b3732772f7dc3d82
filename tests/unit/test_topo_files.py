"""Topology files: round trips in JSON and YAML, and errors that name the file and field."""

import json
import os

import pytest

from meshsim.topo import Defaults, TopoError, Topology
from meshsim.topo.files import load, loads, save


def sample():
    t = Topology(Defaults(bandwidth=1_000_000, cost="bandwidth"))
    for x, y in [(0, 0), (100, 0), (200, 0), (5000, 5000)]:
        t.add_server(x, y)
    t.add_server(50, 80, kind="router", id=10)
    t.pin(0, 1, latency=12.5, loss=1)
    t.cut(1, 2)
    t.set_up(3, False)
    return t


def same(a, b):
    assert a.to_dict() == b.to_dict()
    assert a.links() == b.links()
    assert a.routes() == b.routes()


@pytest.mark.parametrize("name", ["t.json", "t.yaml", "t.yml"])
def test_round_trip(tmp_path, name):
    t = sample()
    path = tmp_path / name
    save(t, path)
    same(load(path), t)
    if name.endswith(".json"):
        assert json.loads(path.read_text())["version"] == 1
    assert oct(path.stat().st_mode & 0o777) == "0o644"


def test_dict_round_trip_and_view_is_loadable():
    t = sample()
    same(Topology.from_dict(t.to_dict()), t)
    same(Topology.from_dict(json.loads(json.dumps(t.view()))), Topology.from_dict(t.view()))


def test_save_is_atomic_and_leaves_no_temp_files(tmp_path):
    path = tmp_path / "t.json"
    path.write_text("old")
    save(sample(), path)
    assert os.listdir(tmp_path) == ["t.json"]
    with pytest.raises(TopoError, match="cannot write"):
        save(sample(), tmp_path / "missing-dir" / "t.json")


def test_minimal_file(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text("servers:\n  - {id: 0, x: 0, y: 0}\n  - {id: 1, x: 100, y: 0}\n")
    t = load(path)
    assert list(t.links()) == [(0, 1)] and t.defaults == Defaults()


@pytest.mark.parametrize(
    "data, words",
    [
        ([], "must be an object"),
        ({"version": 2}, "version"),
        ({"servers": {}}, "servers: must be a list"),
        ({"server": []}, "unknown key 'server'"),
        ({"servers": [{"id": 0, "x": 0}]}, "servers[0]: missing 'y'"),
        ({"servers": [{"id": 0, "x": "a", "y": 0}]}, "servers[0].x: must be a number"),
        ({"servers": [{"id": -1, "x": 0, "y": 0}]}, "servers[0].id: must be between"),
        ({"servers": [{"id": 0, "x": 0, "y": 0, "up": "yes"}]}, "servers[0].up: must be true or false"),
        ({"servers": [{"id": 0, "x": 0, "y": 0, "colour": 1}]}, "servers[0]: unknown key 'colour'"),
        (
            {"servers": [{"id": 0, "x": 0, "y": 0}, {"id": 0, "x": 1, "y": 1}]},
            "servers[1].id: server 0 appears twice",
        ),
        ({"defaults": {"bandwidth": 0}}, "defaults.bandwidth (bit/s): must be between"),
        ({"defaults": {"speed": 1}}, "defaults: unknown setting 'speed'"),
        ({"defaults": []}, "defaults: must be an object"),
        (
            {"servers": [{"id": 0, "x": 0, "y": 0}], "pins": [{"a": 0, "b": 1, "latency": 1}]},
            "pins[0]: no server 1",
        ),
        (
            {"servers": [{"id": 0, "x": 0, "y": 0}], "pins": [{"a": 0, "b": 0, "latency": 1}]},
            "pins[0]: a link joins",
        ),
        (
            {"servers": [{"id": 0, "x": 0, "y": 0}, {"id": 1, "x": 0, "y": 0}], "pins": [{"a": 0, "b": 1}]},
            "pins[0]: pins nothing",
        ),
        (
            {
                "servers": [{"id": 0, "x": 0, "y": 0}, {"id": 1, "x": 0, "y": 0}],
                "pins": [{"a": 0, "b": 1, "loss": 200}],
            },
            "pins[0].loss: must be",
        ),
        ({"servers": [{"id": 0, "x": 0, "y": 0}], "cuts": [[0]]}, "cuts[0]: must be a pair"),
        ({"servers": [{"id": 0, "x": 0, "y": 0}], "cuts": [[0, 3]]}, "cuts[0]: no server 3"),
    ],
)
def test_bad_files_name_the_field(tmp_path, data, words):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(TopoError) as e:
        load(path)
    assert str(e.value).startswith(f"{path}: ")
    assert words in str(e.value)


def test_pins_for_unlinked_pairs_are_kept(tmp_path):
    d = {
        "servers": [{"id": 0, "x": 0, "y": 0}, {"id": 1, "x": 900, "y": 0}],
        "pins": [{"a": 1, "b": 0, "latency": 5}],
        "cuts": [[1, 0]],
    }
    t = Topology.from_dict(d)
    assert t.links() == {} and t.pins() == {(0, 1): {"latency": 5.0}} and t.cuts() == {(0, 1)}
    t.move_server(1, 10, 0)
    assert t.link(0, 1).params.latency == 5.0 and t.link(0, 1).cut


def test_syntax_errors_and_missing_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"servers": [}')
    with pytest.raises(TopoError, match=r"bad.json: not valid JSON \(line 1"):
        load(bad)
    bady = tmp_path / "bad.yaml"
    bady.write_text("servers: [\n")
    with pytest.raises(TopoError, match=r"bad.yaml: not valid YAML"):
        load(bady)
    with pytest.raises(TopoError, match="nope.json: cannot read"):
        load(tmp_path / "nope.json")
    with pytest.raises(TopoError, match="<string>: version"):
        loads('{"version": "1"}')
