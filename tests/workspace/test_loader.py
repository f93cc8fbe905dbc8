"""Workspace loading: every problem as file:line:col, nothing half-loaded."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tagloop.errors import WorkspaceError
from tagloop.workspace import load_workspace
from tests.conftest import write_workspace


def problems(root: Path) -> list[str]:
    with pytest.raises(WorkspaceError) as failure:
        load_workspace(root)
    return [str(p) for p in failure.value.problems]


def put(root: Path, name: str, text: str) -> None:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")


@pytest.fixture
def root(tmp_path: Path, sqlite_url: str) -> Path:
    return write_workspace(tmp_path / "ws", sqlite_url)


def test_valid_workspace(root: Path) -> None:
    ws = load_workspace(root)
    assert set(ws.dictionary.types) == {"customer", "product_batch", "device", "account"}
    assert ws.tags["VIP"].spec.category == ["价值", "等级"]
    assert ws.tags["VIP"].rule.attributes == {"spend"}
    assert ws.timezone.key == "Asia/Shanghai"
    assert ws.database_url.startswith("sqlite:////")
    assert len(ws.revision) == 16


def test_missing_project_file(tmp_path: Path) -> None:
    with pytest.raises(WorkspaceError, match=r"tagloop\.yaml is missing"):
        load_workspace(tmp_path)


def test_yaml_syntax_error(root: Path) -> None:
    put(
        root,
        "tags/broken.yaml",
        """
        tags:
          - name: x
            rule: [unclosed
    """,
    )
    (problem,) = problems(root)
    assert problem.startswith("tags/broken.yaml:4:1: YAML syntax error")


def test_unknown_and_missing_keys_with_suggestions(root: Path) -> None:
    put(
        root,
        "tags/typo.yaml",
        """
        name: typo
        entity: customer
        rul: spend > 1
    """,
    )
    assert problems(root) == [
        "tags/typo.yaml:3:1: unknown key 'rul' (did you mean 'rule'?) (allowed: name, entity, "
        "kind, rule, jsonlogic, value, multi, value_type, valid_for, category, owner, description, "
        "action, review)",
    ]
    put(root, "tags/typo.yaml", "name: typo\nentity: customer\n")
    assert problems(root) == [
        "tags/typo.yaml:1:1: a rule tag needs a 'rule' (or 'jsonlogic'), a 'value', or both"
    ]


def test_rule_errors_point_into_the_rule(root: Path) -> None:
    put(
        root,
        "tags/vip.yaml",
        """
        tags:
          - name: 高价值
            entity: customer
            rule: 客户等级 == '高' and spned > 5
          - name: block
            entity: customer
            rule: |
              city == '上海'
                and spend > 'x'
    """,
    )
    found = problems(root)
    assert found[0] == (
        "tags/vip.yaml:4:27: unknown attribute 'spned' of customer (did you mean 'spend'?)\n"
        "    rule: 客户等级 == '高' and spned > 5\n" + " " * 31 + "^^^^^"
        # 26 characters precede 'spned', five of them double-width: the caret sits at 31.
    )
    assert found[1].startswith("tags/vip.yaml:9:13: cannot compare a number with a string")


def test_cross_file_problems(root: Path) -> None:
    put(
        root,
        "tags/more.yaml",
        """
        tags:
          - name: VIP
            entity: customer
            rule: spend > 1
          - name: other
            entity: custmer
            rule: spend > 1
    """,
    )
    put(
        root,
        "sources/orders.yaml",
        """
        name: orders
        kind: file
        mapping: {type: order, entity_type: client, entity_id: id}
    """,
    )
    assert problems(root) == [
        "sources/orders.yaml:3:37: unknown entity type 'client' (known: account, customer, "
        "device, product_batch)",
        "tags/more.yaml:6:13: unknown entity type 'custmer' (did you mean 'customer'?) "
        "(known: account, customer, device, product_batch)",
        # Files load in name order, so the copy in tags.yaml is the duplicate.
        "tags/tags.yaml:3:11: tag 'VIP' is already defined at tags/more.yaml:2:11",
    ]


def test_every_problem_is_reported_not_just_the_first(root: Path) -> None:
    put(root, "tagloop.yaml", "name: t\ntimezone: Mars/Olympus\n")
    put(
        root,
        "entities/bad.yaml",
        """
        name: 2bad
        fields:
          x: {type: colour}
    """,
    )
    put(root, "entities/system.yaml", "name: sys\nfields:\n  event_count: integer\n")
    found = problems(root)
    assert found[0].startswith("entities/bad.yaml:1:7: name: entity type '2bad' must be")
    assert found[1].startswith("entities/bad.yaml:3:13: fields.x.type: Input should be")
    assert found[2] == (
        "entities/system.yaml:3:3: fields: 'event_count' is a system "
        "attribute every profile has already"
    )
    assert found[3] == (
        "tagloop.yaml:2:11: timezone: unknown time zone 'Mars/Olympus' "
        "(use an IANA name such as Asia/Shanghai)"
    )


def test_a_broken_file_never_half_loads(root: Path) -> None:
    put(
        root,
        "tags/z.yaml",
        "tags:\n  - {name: ok, entity: customer, rule: spend > 1}\n"
        "  - {name: bad, entity: customer, rule: 'spend >'}\n",
    )
    with pytest.raises(WorkspaceError):
        load_workspace(root)


def test_not_utf8_and_bad_shape(root: Path) -> None:
    (root / "tags" / "latin.yaml").write_bytes(b"name: caf\xe9\n")
    put(root, "tags/list.yaml", "- a\n- b\n")
    assert problems(root) == [
        "tags/latin.yaml: not UTF-8 text (byte 9)",
        "tags/list.yaml:1:1: expected one item with a 'name' key, or a list under 'tags:'",
    ]


def test_duplicate_yaml_keys(root: Path) -> None:
    put(root, "tags/dupe.yaml", "name: a\nentity: customer\nrule: spend > 1\nrule: spend > 2\n")
    assert problems(root) == ["tags/dupe.yaml:4:1: duplicate key 'rule'"]


def test_database_url_from_environment(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAGLOOP_DATABASE_URL", "postgresql://db.example/prod")
    assert load_workspace(root).database_url == "postgresql://db.example/prod"


def test_fingerprint_tracks_meaning_not_description(root: Path) -> None:
    before = load_workspace(root).tags["VIP"].fingerprint
    text = (root / "tags" / "tags.yaml").read_text(encoding="utf-8")
    (root / "tags" / "tags.yaml").write_text(
        text.replace("big spenders", "大客户"), encoding="utf-8"
    )
    assert load_workspace(root).tags["VIP"].fingerprint == before
    (root / "tags" / "tags.yaml").write_text(
        text.replace("spend >= 1000", "spend >= 2000"), encoding="utf-8"
    )
    assert load_workspace(root).tags["VIP"].fingerprint != before
