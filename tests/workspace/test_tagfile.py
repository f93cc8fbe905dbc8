"""Saving a rule rewrites only that rule in its YAML file: everything else, comments and
layout included, stays byte for byte."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from tagloop.errors import Conflict, ValidationFailed
from tagloop.workspace.tagfile import set_rule, write_rule
from tests.rules.strategies import expressions

FILE = """\
# Customer tags (owned by 销售运营部)
tags:
  - name: 海外客户
    entity: customer
    rule: country != 'United Kingdom'   # shipped abroad

  - name: 价值等级
    entity: customer
    value: >-
      case when sum(order.amount, 365d) >= 10000 then '高'
      else '低' end

  - name: 流失预警
    entity: customer
    rule: >-
      count(order) >= 5
      and days_since(last(order.time)) > 90
    owner: 销售运营部
"""


def tag(text: str, name: str) -> dict[str, object]:
    found: dict[str, object] = next(t for t in yaml.safe_load(text)["tags"] if t["name"] == name)
    return found


def test_a_plain_rule_is_replaced_and_its_comment_kept() -> None:
    edited = set_rule(FILE, "tags/customer.yaml", "海外客户", "country not in ['UK', '英国']")
    assert "    rule: country not in ['UK', '英国']   # shipped abroad\n" in edited
    assert edited.replace("country not in ['UK', '英国']", "country != 'United Kingdom'") == FILE


def test_a_block_rule_is_replaced_keeping_the_blank_line_after_it() -> None:
    edited = set_rule(FILE, "f", "流失预警", "count(order) >= 6")
    assert "    rule: count(order) >= 6\n    owner: 销售运营部\n" in edited
    assert tag(edited, "流失预警") == {
        "name": "流失预警",
        "entity": "customer",
        "rule": "count(order) >= 6",
        "owner": "销售运营部",
    }


def test_a_rule_is_added_after_the_name_and_removed_again() -> None:
    added = set_rule(FILE, "f", "价值等级", "count(order) > 0")
    assert "  - name: 价值等级\n    rule: count(order) > 0\n    entity: customer\n" in added
    assert set_rule(added, "f", "价值等级", None) == FILE


def test_texts_yaml_would_misread_are_quoted() -> None:
    for rule in ["a == 'x' # no comment", "x: y", "'q' == name", "- 1 > 0", "@x"]:
        edited = set_rule(FILE, "f", "海外客户", rule)
        assert tag(edited, "海外客户")["rule"] == rule


def test_several_lines_become_a_literal_block() -> None:
    edited = set_rule(FILE, "f", "流失预警", "a > 1\nand b < 2")
    assert "    rule: |-\n      a > 1\n      and b < 2\n    owner:" in edited
    # A comment after the value would fall inside a block: double quotes keep it out.
    edited = set_rule(FILE, "f", "海外客户", "a > 1\nand b < 2")
    assert '    rule: "a > 1\\nand b < 2"   # shipped abroad\n' in edited
    assert tag(edited, "海外客户")["rule"] == "a > 1\nand b < 2"


def test_a_tag_not_in_the_file_is_an_error_naming_the_file() -> None:
    with pytest.raises(ValidationFailed, match=r"tags/x.yaml: no tag named 'VIP'"):
        set_rule(FILE, "tags/x.yaml", "VIP", "true")


def test_a_flow_mapping_is_left_to_a_person() -> None:
    with pytest.raises(ValidationFailed, match="not a block mapping"):
        set_rule("tags:\n  - {name: a, entity: c, rule: x}\n", "f", "a", "y")


def test_other_shapes_of_tag_files() -> None:
    single = "name: a\nentity: c\nrule: x > 1\n"
    assert set_rule(single, "f", "a", "x > 2") == "name: a\nentity: c\nrule: x > 2\n"
    under = "tag:\n  name: a\n  entity: c\n"
    assert set_rule(under, "f", "a", "y") == "tag:\n  name: a\n  rule: y\n  entity: c\n"


def test_write_refuses_a_file_changed_meanwhile(tmp_path: Path) -> None:
    path = tmp_path / "customer.yaml"
    path.write_text(FILE, "utf-8")
    with pytest.raises(Conflict, match="changed on disk"):
        write_rule(path, "tags/customer.yaml", "海外客户", "true", FILE + "\n")
    write_rule(path, "tags/customer.yaml", "海外客户", "true", FILE)
    assert tag(path.read_text("utf-8"), "海外客户")["rule"] == "true"
    assert [p.name for p in tmp_path.iterdir()] == ["customer.yaml"]  # no temporary left


RULE_TEXT = st.one_of(
    expressions(),
    st.text(
        alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\x85"),
        min_size=1,
        max_size=40,
    ).filter(lambda s: s.strip() == s and s),
    st.lists(expressions(max_leaves=3), min_size=2, max_size=3).map("\n".join),
)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["海外客户", "价值等级", "流失预警"]), RULE_TEXT)
def test_only_the_rule_changes(name: str, rule: str) -> None:
    edited = set_rule(FILE, "f", name, rule)
    before, after = yaml.safe_load(FILE)["tags"], yaml.safe_load(edited)["tags"]
    for old, new in zip(before, after, strict=True):
        if old["name"] == name:
            assert new == {**old, "rule": rule}
        else:
            assert new == old
    assert edited.startswith("# Customer tags (owned by 销售运营部)\n")
    # Setting it back gives a file with the same data (the first rendering may differ).
    assert yaml.safe_load(set_rule(edited, "f", name, "x")) == yaml.safe_load(
        set_rule(FILE, "f", name, "x")
    )
