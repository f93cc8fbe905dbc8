"""SQL rules in a workspace: tags/*.sql load beside tags/*.yaml, errors point into the file."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tagloop.errors import WorkspaceError
from tagloop.rules import DictContext
from tagloop.workspace import load_workspace
from tests.conftest import write_workspace

FEEDBACK = """
    name: feedback
    fields:
      severity_score: number
      last_occurrence_time: datetime
      product_line: string
"""
SEED = """\
CREATE RULE critical_issue_escalation AS
SELECT * FROM feedbacks
WHERE severity_score > 8
  AND last_occurrence_time > NOW() - INTERVAL '1 hour'
  AND product_line = '高端系列'
ESCALATE TO production_team WITH PRIORITY 1;
"""
HOUR = 3_600_000_000


@pytest.fixture
def root(tmp_path: Path, sqlite_url: str) -> Path:
    return write_workspace(tmp_path / "ws", sqlite_url, extra={"entities/feedback.yaml": FEEDBACK})


def put(root: Path, name: str, text: str) -> None:
    (root / name).write_text(textwrap.dedent(text), encoding="utf-8")


def problems(root: Path) -> list[str]:
    with pytest.raises(WorkspaceError) as failure:
        load_workspace(root)
    return [str(p) for p in failure.value.problems]


def test_the_seed_rule_loads_as_a_tag(root: Path) -> None:
    put(root, "tags/escalation.sql", SEED)
    ws = load_workspace(root)
    tag = ws.tags["critical_issue_escalation"]
    assert tag.entity == "feedback" and tag.computed
    assert tag.spec.action == {"escalate_to": "production_team", "priority": 1}
    assert tag.spec.rule == (
        "severity_score > 8 and last_occurrence_time > now() - 1h and product_line == '高端系列'"
    )
    assert tag.location == "tags/escalation.sql:1:1"
    assert tag.rule is not None
    assert tag.rule.attributes == {"severity_score", "last_occurrence_time", "product_line"}
    now = 1_714_536_000_000_000
    record = {
        "severity_score": 9,
        "last_occurrence_time": now - HOUR // 2,
        "product_line": "高端系列",
    }
    assert tag.rule.evaluate(DictContext(record, now=now)) is True
    assert tag.rule.evaluate(DictContext({**record, "severity_score": 3}, now=now)) is False
    assert "VIP" in ws.tags  # the YAML tags are still there


def test_comment_lines_above_a_rule_set_its_fields(root: Path) -> None:
    header = (
        "-- Rules of the quality team.\n"
        "\n"
        "-- category: 质量 > 投诉\n"
        "-- owner: 品质部\n"
        "-- description: 高端系列的严重投诉\n"
    )
    minor = (
        "-- owner: nobody (a blank line separates it from the rule)\n"
        "\n"
        "CREATE RULE minor AS SELECT * FROM feedbacks WHERE severity_score <= 3\n"
    )
    put(root, "tags/escalation.sql", header + SEED + minor)
    ws = load_workspace(root)
    spec = ws.tags["critical_issue_escalation"].spec
    assert (spec.category, spec.owner) == (["质量", "投诉"], "品质部")
    assert spec.description == "高端系列的严重投诉"
    assert ws.tags["critical_issue_escalation"].location == "tags/escalation.sql:6:1"
    other = ws.tags["minor"].spec
    assert (other.owner, other.action, other.category) == ("", None, [])


def test_rule_errors_point_into_the_sql_file(root: Path) -> None:
    put(
        root,
        "tags/escalation.sql",
        "-- 升级规则\n" + SEED.replace("severity_score >", "severity >"),
    )
    assert problems(root) == [
        "tags/escalation.sql:4:7: unknown attribute 'severity' of feedback "
        "(did you mean 'severity_score'?)\n"
        "WHERE severity > 8\n"
        "      ^^^^^^^^"
    ]
    put(root, "tags/escalation.sql", SEED.replace("'高端系列'", "1"))
    assert problems(root) == [
        "tags/escalation.sql:5:7: cannot compare a string with an integer\n"
        "  AND product_line = 1\n"
        "      ^^^^^^^^^^^^^^^^"
    ]


def test_a_broken_file_never_half_loads(root: Path) -> None:
    ok = "CREATE RULE fine AS SELECT * FROM feedbacks WHERE severity_score > 1;\n"
    put(root, "tags/escalation.sql", ok + SEED.replace("WHERE", "JOIN teams ON x = y WHERE"))
    assert problems(root) == [
        "tags/escalation.sql:4:1: rules select from one table: JOIN is not supported\n"
        "JOIN teams ON x = y WHERE severity_score > 8\n"
        "^^^^^^^^^^^^^^^^^^^"
    ]
    put(root, "tags/escalation.sql", ok + SEED.replace("'高端系列'", "'高端系列"))
    assert problems(root) == [
        "tags/escalation.sql:6:22: unterminated string\n"
        "  AND product_line = '高端系列\n"
        "                     ^^^^^^^^^"
    ]


def test_unknown_tables_and_duplicate_names(root: Path) -> None:
    put(
        root,
        "tags/escalation.sql",
        """\
        CREATE RULE a AS SELECT * FROM feedbaks WHERE severity_score > 8;
        CREATE RULE VIP AS SELECT * FROM customers WHERE spend > 1;
        CREATE RULE categorized AS SELECT * FROM product_batches WHERE line = 'x';
        CREATE RULE "a/b" AS SELECT * FROM devices WHERE model = 'x';
        """,
    )
    assert problems(root) == [
        "tags/escalation.sql:1:32: unknown entity type 'feedbaks' (did you mean 'feedback'?)\n"
        "CREATE RULE a AS SELECT * FROM feedbaks WHERE severity_score > 8;\n"
        "                               ^^^^^^^^",
        # YAML files load first, so the SQL copy is the duplicate.
        "tags/escalation.sql:2:13: tag 'VIP' is already defined at tags/tags.yaml:3:11",
        "tags/escalation.sql:4:13: name: tag name must not contain '/'",
    ]


def test_sql_files_are_part_of_the_revision(root: Path) -> None:
    put(root, "tags/escalation.sql", SEED)
    before = load_workspace(root).revision
    put(root, "tags/escalation.sql", SEED.replace("PRIORITY 1", "PRIORITY 2"))
    after = load_workspace(root)
    assert after.revision != before
    assert after.tags["critical_issue_escalation"].spec.action == {
        "escalate_to": "production_team",
        "priority": 2,
    }


def test_not_utf8(root: Path) -> None:
    (root / "tags" / "latin.sql").write_bytes(b"-- caf\xe9\n")
    assert problems(root) == ["tags/latin.sql: not UTF-8 text (byte 6)"]
