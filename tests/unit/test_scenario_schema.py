"""Scenario files: schema, line numbers in errors, meaning checks against the topology, examples."""

from __future__ import annotations

import textwrap
from pathlib import Path

import jsonschema
import pytest

from meshsim.scenario import model, schema
from meshsim.scenario.schema import ScenarioError

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "examples").rglob("*.yaml"))


def write(tmp_path: Path, text: str, name: str = "scenario.yaml") -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text).lstrip())
    return p


def problems(path: Path) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        model.load(path)
    return info.value.problems


def test_schema_is_a_valid_json_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(schema.schema())
    steps = schema.schema()["$defs"]["step"]["properties"]
    assert set(schema.ACTIONS) == set(steps) - {"at", "label"}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: str(p.relative_to(REPO)))
def test_examples_load(path: Path) -> None:
    scn = model.load(path)
    assert scn.steps and scn.topology.servers


def test_examples_include_the_three_ci_forms() -> None:
    names = {p.relative_to(REPO / "examples").as_posix() for p in EXAMPLES}
    assert {"ci/flaky-bridge.yaml", "ci/partition-heal.yaml", "ci/random-mesh-routers.yaml"} <= names
    assert len(model.load(REPO / "examples/random-mesh-30.yaml").topology.servers) == 30


def test_error_names_file_line_and_field(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        """
        topology:
          generate: {type: line, n: 3}
        steps:
          - sleep: 1
          - create_room: {room: r, server: 0, join: all}
          - send:
              room: r
              from: 0
              count: 0
        """,
    )
    assert problems(p) == [f"{p}:9: steps[2].send.count: must be >= 1"]


def test_unknown_field_points_at_its_key(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        """
        topology:
          generate: {type: line, n: 3}
        steps:
          - stop:
              servers: [1]
              how: hard
        """,
    )
    (msg,) = problems(p)
    assert msg.startswith(f"{p}:6: steps[0].stop.how: unknown field")


def test_every_problem_is_listed_in_line_order(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        """
        kind: dragon
        topology:
          generate: {type: line, n: 3}
        steps:
          - wait: {for: bogus}
          - {}
          - cut: {link: [0, 1]}
            heal: {link: [0, 1]}
          - pin: {link: [0, 1]}
        """,
    )
    got = problems(p)
    assert [m.split(":")[1] for m in got] == ["1", "5", "6", "7", "9"]
    assert 'kind: must be one of "synapse", "router", got "dragon"' in got[0]
    assert "exactly one action" in got[2] and "got none" in got[2]
    assert "got cut, heal" in got[3]
    assert "at least one of bandwidth" in got[4]


def test_yaml_syntax_error_has_a_line(tmp_path: Path) -> None:
    p = write(tmp_path, "topology:\n  generate: {type: line, n: 3}\nsteps:\n  - sleep: 1\n  bad: [\n")
    (msg,) = problems(p)
    assert msg.startswith(f"{p}:5: not valid YAML")


def test_meaning_is_checked_against_the_topology(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        """
        kind: router
        topology:
          generate: {type: line, n: 4, spacing: 250}
        steps:
          - stop: {servers: [7]}
          - cut: {link: [0, 2]}
          - send: {room: nowhere, from: 0}
          - at: 10
            sleep: 1
          - at: 5
            heal_all: {}
          - traffic: {from: 1, to: 1}
        """,
    )
    got = problems(p)
    assert f"{p}:5: steps[0].stop.servers: no server 7 (servers: 0-3)" in got
    assert f"{p}:6: steps[1].cut.link: servers 0 and 2 are not linked in the initial topology" in got
    assert any("room 'nowhere' is not created" in m for m in got)
    assert any("Matrix steps need synapse servers" in m for m in got)
    assert any(m.startswith(f"{p}:10: steps[4].at: must not be earlier") for m in got)
    assert any("steps[5].traffic.to: traffic needs two different servers" in m for m in got)


def test_topology_file_relative_to_scenario(tmp_path: Path) -> None:
    (tmp_path / "topo.yaml").write_text(
        "version: 1\nservers:\n- {id: 0, x: 100, y: 100, kind: router}\n- {id: 5, x: 200, y: 100, kind: router}\n"
    )
    p = write(tmp_path, "topology:\n  file: topo.yaml\nsteps:\n  - cut: {link: [0, 5]}\n")
    scn = model.load(p)
    assert sorted(scn.topology.servers) == [0, 5]
    bad = write(tmp_path, "topology:\n  file: missing.yaml\nsteps:\n  - sleep: 1\n", "bad.yaml")
    (msg,) = problems(bad)
    assert msg.startswith(f"{bad}:2: topology.file: ") and "cannot read" in msg


def test_topology_needs_exactly_one_source(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        "topology:\n  generate: {type: line, n: 2}\n  servers: [{x: 1, y: 1}]\nsteps:\n  - sleep: 1\n",
    )
    (msg,) = problems(p)
    assert "give exactly one of file, generate, servers; got generate, servers" in msg


def test_generated_topologies_and_defaults(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        """
        seed: 3
        kind: router
        topology:
          generate: {type: random, n: 12}
          defaults: {max_latency: 250}
        steps:
          - sleep: 0
        """,
    )
    a, b = model.load(p), model.load(p)
    assert a.topology.to_dict() == b.topology.to_dict()
    assert a.topology.defaults.max_latency == 250
    assert {s.kind for s in a.topology.servers.values()} == {"router"}
    grid = write(tmp_path, "topology:\n  generate: {type: grid, rows: 2}\nsteps:\n  - sleep: 0\n", "g.yaml")
    (msg,) = problems(grid)
    assert "grid needs cols" in msg


def test_all_means_synapse_servers_in_matrix_steps(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        """
        topology:
          servers:
            - {x: 100, y: 100}
            - {x: 200, y: 100, kind: router}
            - {x: 300, y: 100}
        steps:
          - create_room: {room: r, server: 0, join: all}
        """,
    )
    scn = model.load(p)
    assert scn.matrix_servers() == [0, 2]
    assert model.expand("all", scn.matrix_servers()) == [0, 2]
    assert scn.rooms == ["r"]
