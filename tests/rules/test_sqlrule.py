"""The SQL rule front end: CREATE RULE statements and WHERE conditions -> rule trees."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tagloop.rules import DictContext, RuleError, Scope, compile_tree, parse
from tagloop.rules import tree as t
from tagloop.rules.printer import to_text
from tagloop.rules.sqlrule import parse_sql_condition, parse_sql_rules, resolve_entity
from tagloop.timeutil import to_us

SEED = """\
CREATE RULE critical_issue_escalation AS
SELECT * FROM feedbacks
WHERE severity_score > 8
  AND last_occurrence_time > NOW() - INTERVAL '1 hour'
  AND product_line = '高端系列'
ESCALATE TO production_team WITH PRIORITY 1;
"""
FEEDBACK = Scope(
    "feedback",
    {"severity_score": "number", "last_occurrence_time": "datetime", "product_line": "string"},
)
TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=TZ)


def validate_all(sql: str, expected: str) -> None:
    """``sql`` translates to the tree of the rule text ``expected``, and prints as it."""
    tree = parse_sql_condition(sql)
    assert to_text(tree) == expected
    assert tree == parse(expected)


def validate_error(sql: str) -> tuple[str, str]:
    """The message of the error ``sql`` raises, and the text under its caret."""
    with pytest.raises(RuleError) as failure:
        parse_sql_condition(sql)
    return failure.value.message, sql[failure.value.start : failure.value.end]


def line_col(text: str, offset: int) -> str:
    return f"{text.count(chr(10), 0, offset) + 1}:{offset - text.rfind(chr(10), 0, offset)}"


def error_at(text: str) -> tuple[str, str]:
    """``line:col`` of the caret of the error ``text`` raises, and its message."""
    with pytest.raises(RuleError) as failure:
        parse_sql_rules(text)
    return line_col(text, failure.value.start), failure.value.message


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        # comparisons
        ("a = 1", "a == 1"),
        ("a <> 1", "a != 1"),
        ("a != 1", "a != 1"),
        ("a < 1 AND b <= 2 AND c > 3 AND d >= 4", "a < 1 and b <= 2 and c > 3 and d >= 4"),
        ("a = b = c", "(a == b) == c"),
        # logic and parentheses
        ("NOT a OR b AND c", "not a or b and c"),
        ("(a OR b) AND NOT (c OR d)", "(a or b) and not (c or d)"),
        ("a AND (b AND c)", "a and (b and c)"),
        ("((a))", "a"),
        # membership, ranges, nulls
        ("x IN (1, 2, 3)", "x in [1, 2, 3]"),
        ("x NOT IN ('a', 'b')", "x not in ['a', 'b']"),
        ("NOT (x IN (1))", "not x in [1]"),
        ("x BETWEEN 1 AND 10", "x between 1 and 10"),
        ("x NOT BETWEEN 1 AND 10", "x not between 1 and 10"),
        ("x IS NULL", "x is null"),
        ("x IS NOT NULL", "x is not null"),
        ("NOT x IS NULL", "x is not null"),
        # LIKE: a text test where the pattern allows, else an anchored regular expression
        ("name LIKE 'VIP%'", "name startswith 'VIP'"),
        ("name LIKE '%店'", "name endswith '店'"),
        ("name LIKE '%高端%'", "name contains '高端'"),
        ("name LIKE 'exact'", "name == 'exact'"),
        ("name LIKE '%'", "name endswith ''"),
        ("name NOT LIKE '%test%'", "not name contains 'test'"),
        ("name LIKE 'a_c%'", "name matches '(?s)^a.c'"),
        ("name LIKE '%a.c_'", "name matches '(?s)a\\\\.c.$'"),
        ("name LIKE '50\\%'", "name == '50%'"),
        ("name LIKE '10!%%' ESCAPE '!'", "name startswith '10%'"),
        ("name ILIKE 'Vip%'", "lower(name) startswith 'vip'"),
        ("name ILIKE 'v_p'", "name matches '(?is)^v.p$'"),
        ("name ~ '^A[0-9]+'", "name matches '^A[0-9]+'"),
        # arithmetic
        ("(a + b) * c - d / e % f > 1", "(a + b) * c - d / e % f > 1"),
        ("-x < -5", "-x < -5"),
        ("-(5) = a", "-5 == a"),
        ("a - -1 = 0", "a - -1 == 0"),
        # literals
        ("s = 'it''s'", "s == 'it\\'s'"),
        ("s = E'tab\\tx'", "s == 'tab\\tx'"),
        ("s = '高端系列'", "s == '高端系列'"),
        ("x = 2.50", "x == 2.5"),
        ("x = 1e3", "x == 1000.0"),
        (
            "flag = TRUE OR flag = FALSE OR flag IS NULL",
            "flag == true or flag == false or flag is null",
        ),
        ("x = NULL", "x == null"),
        ("t > TIMESTAMP '2024-01-01 08:00:00+08:00'", "t > '2024-01-01 08:00:00+08:00'"),
        ("d = DATE '2024-01-01'", "d == '2024-01-01'"),
        # time
        ("t > NOW() - INTERVAL '1 hour'", "t > now() - 1h"),
        ("t > CURRENT_TIMESTAMP - INTERVAL '30' DAY", "t > now() - 30d"),
        ("t < now() - INTERVAL '2 weeks'", "t < now() - 2w"),
        ("d = INTERVAL '1 day 2 hours'", "d == 26h"),
        ("d = INTERVAL '1.5 hours'", "d == 90m"),
        ("d = INTERVAL '90 seconds'", "d == 90s"),
        ("d = INTERVAL '250 ms'", "d == 250ms"),
        ("d = INTERVAL '-3 minutes'", "d == -3m"),
        # functions
        ("lower(a) = upper(b)", "lower(a) == upper(b)"),
        ("abs(x) > round(y, 2) AND round(z) = 1", "abs(x) > round(y, 2) and round(z) == 1"),
        ("COALESCE(city, 'unknown') = 'unknown'", "coalesce(city, 'unknown') == 'unknown'"),
        ("length(s) > 3 AND char_length(s) < 9", "len(s) > 3 and len(s) < 9"),
        # CASE
        (
            "CASE WHEN spend > 1000 THEN '高' WHEN spend > 100 THEN '中' ELSE '低' END = '高'",
            "case when spend > 1000 then '高' when spend > 100 then '中' else '低' end == '高'",
        ),
        ("CASE level WHEN 1 THEN 'a' END = 'a'", "case when level == 1 then 'a' end == 'a'"),
        # names
        ('"Customer ID" IS NOT NULL', "`Customer ID` is not null"),
        ('"and" = 1', "`and` == 1"),
        ("address.city = '上海'", "address.city == '上海'"),
        ('"address"."city" = \'上海\'', "address.city == '上海'"),
        ("a.b.c.d.e = 1", "a.b.c.d.e == 1"),
        ("客户等级 = 'A'", "客户等级 == 'A'"),
        ("x > 1 -- a comment\n AND /* another */ y", "x > 1 and y"),
    ],
)
def test_translation(sql: str, expected: str) -> None:
    validate_all(sql, expected)


def test_the_seed_rule() -> None:
    (rule,) = parse_sql_rules(SEED)
    assert (rule.name, rule.table) == ("critical_issue_escalation", "feedbacks")
    assert rule.action == {"escalate_to": "production_team", "priority": 1}
    assert resolve_entity(rule, ["customer", "feedback"]) == "feedback"
    assert to_text(rule.where) == (
        "severity_score > 8 and last_occurrence_time > now() - 1h and product_line == '高端系列'"
    )
    # Spans point into the file, so errors found later can point there too.
    assert SEED[slice(*rule.span)].startswith("CREATE RULE") and SEED[rule.span[1]] == ";"
    assert SEED[slice(*rule.name_span)] == "critical_issue_escalation"
    assert SEED[slice(*rule.table_span)] == "feedbacks"
    assert SEED[slice(*rule.where.span)].startswith("severity_score > 8\n  AND last_")
    assert isinstance(rule.where, t.Logical)
    spans = [SEED[slice(*node.span)] for node in rule.where.operands]
    assert spans == [
        "severity_score > 8",
        "last_occurrence_time > NOW() - INTERVAL '1 hour'",
        "product_line = '高端系列'",
    ]
    interval = rule.where.operands[1].right.right  # type: ignore[attr-defined]
    assert SEED[slice(*interval.span)] == "INTERVAL '1 hour'"


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({}, True),
        ({"severity_score": 8}, False),
        ({"last_occurrence_time": NOW - timedelta(hours=2)}, False),
        ({"product_line": "入门系列"}, False),
        ({"severity_score": None}, None),  # unknown: the tag is not assigned
    ],
)
def test_the_seed_rule_evaluates(changes: dict[str, object], expected: bool | None) -> None:
    (rule,) = parse_sql_rules(SEED)
    compiled = compile_tree(SEED, rule.where, FEEDBACK)
    record: dict[str, object] = {
        "severity_score": 9.5,
        "last_occurrence_time": NOW - timedelta(minutes=30),
        "product_line": "高端系列",
        **changes,
    }
    values = {
        k: to_us(v, TZ) if isinstance(v, datetime) else v
        for k, v in record.items()
        if v is not None
    }
    assert compiled.evaluate(DictContext(values, now=to_us(NOW, TZ))) is expected
    assert compiled.attributes == {"severity_score", "last_occurrence_time", "product_line"}


def test_several_statements_comments_and_optional_parts() -> None:
    text = """
    -- a comment; with 'quotes' and ESCALATE TO nobody
    CREATE RULE "高价值 投诉" AS SELECT * FROM categories c
    WHERE c.note = ';' AND note <> 'ESCALATE TO x' /* ; */ ESCALATE TO "QA 团队";
    create rule quiet as select * from batches where line is null
    """
    first, second = parse_sql_rules(text)
    assert (first.name, first.table, first.action) == (
        "高价值 投诉",
        "categories",
        {"escalate_to": "QA 团队"},
    )
    assert to_text(first.where) == "note == ';' and note != 'ESCALATE TO x'"  # c. is the table's
    assert (second.name, second.action, to_text(second.where)) == ("quiet", None, "line is null")
    assert resolve_entity(first, ["category"]) == "category"
    assert resolve_entity(second, ["batch"]) == "batch"
    assert parse_sql_rules("-- nothing here\n/* nor here */ ;") == []


def test_unknown_table() -> None:
    rule = parse_sql_rules("CREATE RULE r AS SELECT * FROM feedbaks WHERE x")[0]
    with pytest.raises(RuleError) as failure:
        resolve_entity(rule, ["customer", "feedback"])
    assert failure.value.message == "unknown entity type 'feedbaks' (did you mean 'feedback'?)"
    assert failure.value.start == rule.table_span[0]


def test_errors_point_at_the_offending_token() -> None:
    # A typo'd column is found by the binder, at the span the translation gave the name.
    typo = SEED.replace("WHERE severity_score", "WHERE severity")
    (rule,) = parse_sql_rules(typo)
    with pytest.raises(RuleError) as failure:
        compile_tree(typo, rule.where, FEEDBACK)
    assert line_col(typo, failure.value.start) == "3:7"
    assert failure.value.message == (
        "unknown attribute 'severity' of feedback (did you mean 'severity_score'?)"
    )
    assert failure.value.caret(typo) == "WHERE severity > 8\n      ^^^^^^^^"

    join = "CREATE RULE r AS\nSELECT * FROM feedbacks\n  JOIN teams ON teams.id = team_id\nWHERE x"
    assert error_at(join) == ("3:3", "rules select from one table: JOIN is not supported")
    group = SEED.replace("\nESCALATE", "\nGROUP BY product_line ESCALATE")
    assert error_at(group) == (
        "6:1",
        "a rule tests one record at a time: GROUP BY is not supported",
    )
    unterminated = SEED.replace("'高端系列'", "'高端系列")
    assert error_at(unterminated) == ("5:22", "unterminated string")
    no_where = "CREATE RULE r AS\nSELECT * FROM feedbacks\nESCALATE TO qa;"
    assert error_at(no_where) == (
        "2:24",
        "a rule needs a condition: WHERE ... after FROM feedbacks",
    )


SHAPE = "rules are SELECT * FROM <table> WHERE <condition>"
KNOWN = "lower, upper, abs, round, coalesce, length, now"
RULE = "CREATE RULE r AS SELECT * FROM t"


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        ("CREATE TABLE r AS", "1:8", "expected RULE after CREATE, found 'TABLE'"),
        ("CREATE RULE AS SELECT", "1:13", "expected the rule's name after CREATE RULE, found 'AS'"),
        (
            "CREATE RULE r AS",
            "1:17",
            "expected SELECT * FROM <table> WHERE <condition> after AS, found the end of the "
            "statement",
        ),
        (
            "CREATE RULE r AS SELECT id FROM t",
            "1:25",
            "a rule selects whole records: write SELECT *",
        ),
        (RULE + ", u WHERE x", "1:33", "rules select from one table: JOIN is not supported"),
        (RULE + " WHERE x ORDER BY y", "1:42", f"{SHAPE}: ORDER BY is not supported"),
        (RULE + " WHERE x UNION SELECT * FROM u", "1:42", f"{SHAPE}: UNION is not supported"),
        (
            "CREATE RULE r AS SELECT * FROM (SELECT 1) WHERE x",
            "1:32",
            "rules select from an entity type's table, as in FROM feedbacks",
        ),
        (RULE + " WHERE (x > 1\nESCALATE TO q", "1:45", "expected ')' to close '('"),
        (RULE + " WHERE x > 1 AND", "1:46", "'AND' needs a value after it"),
        (RULE + " WHERE x /* open", "1:42", "unterminated /* comment"),
        (RULE + " WHERE x ESCALATE team", "1:51", "expected TO after ESCALATE, found 'team'"),
        (
            RULE + " WHERE x ESCALATE TO q WITH PRIORITY high",
            "1:70",
            "expected a whole number after PRIORITY, found 'high'",
        ),
        (
            RULE + " WHERE x ESCALATE TO q WITH PRIORITY 1 NOW",
            "1:72",
            "expected ';' after the ESCALATE clause, found 'NOW'",
        ),
    ],
)
def test_statement_errors(text: str, where: str, message: str) -> None:
    assert error_at(text) == (where, message)


@pytest.mark.parametrize(
    ("sql", "message", "marked"),
    [
        (
            "x > (SELECT max(y) FROM t)",
            "subqueries are not supported: a rule reads one record",
            "(SELECT max(y) FROM t)",
        ),
        (
            "x IN (SELECT y FROM t)",
            "subqueries are not supported: list the values, IN (1, 2)",
            "x IN (SELECT y FROM t)",
        ),
        (
            "count(*) > 1",
            "count() is an aggregate: a rule tests one record at a time, so it cannot be used "
            "in WHERE",
            "count(*)",
        ),
        (
            "lowr(x) = 'a'",
            f"unknown function 'lowr' (did you mean 'lower'?); rules know {KNOWN}",
            "lowr",
        ),
        (
            "substring(lower(s), 1) = 'a'",
            f"substring() is not supported in rules; they know {KNOWN}",
            "substring(lower(s), 1)",
        ),
        (
            "rank() OVER (ORDER BY x) = 1",
            "window functions (OVER) are not supported in rules",
            "rank() OVER (ORDER BY x)",
        ),
        ("x = $1", "parameters are not supported: write the value itself", "$1"),
        ("x IS TRUE", "IS TRUE is not supported: compare with = TRUE", "x IS TRUE"),
        ("x::int > 1", "casts are not supported: the dictionary types each attribute", "x::int"),
        (
            "x IS DISTINCT FROM y",
            "'x IS DISTINCT FROM y' is not supported in rules",
            "x IS DISTINCT FROM y",
        ),
        (
            "t > NOW() - INTERVAL '1 month'",
            "months and years have no fixed length: use days (INTERVAL '30 days')",
            "INTERVAL '1 month'",
        ),
        (
            "d = INTERVAL '01:30:00'",
            "write an interval as a number and a unit: INTERVAL '90 minutes'",
            "INTERVAL '01:30:00'",
        ),
        (
            "d = INTERVAL '1 fortnight'",
            "unknown interval unit 'fortnight': use seconds, minutes, hours, days or weeks",
            "INTERVAL '1 fortnight'",
        ),
        (
            "d = INTERVAL '1 microsecond'",
            "an interval must be a whole number of milliseconds",
            "INTERVAL '1 microsecond'",
        ),
        (
            "name LIKE code",
            "LIKE needs its pattern as a string, as in LIKE '高端%'",
            "name LIKE code",
        ),
        ("name LIKE 'a\\'", "a LIKE pattern cannot end with its escape character", "'a\\'"),
        ("x = 1e999", "'1e999' is not a number a rule can use", "1e999"),
        ('"a`b" = 1', "a name cannot be empty or hold a back-quote (`)", '"a`b"'),
        (
            "x = 1 GROUP BY x",
            "a rule tests one record at a time: GROUP BY is not supported",
            "GROUP BY x",
        ),
        ("x = 'open", "unterminated string", "'open"),
        ("x >", "'>' needs a value after it", ">"),
        ("   ", "the condition is empty", "   "),
    ],
)
def test_unsupported_sql(sql: str, message: str, marked: str) -> None:
    assert validate_error(sql) == (message, marked)


# -- property: a translation prints as rule text that parses back to the same tree --------
LEAVES = [
    "a", "b", "spend", '"Customer ID"', "address.city", "t.a", "客户等级", '"select"',
    "0", "1", "2.5", "1e3", "8", "'x'", "'it''s'", "'高端系列'", "''", "'%a_'",
    "TRUE", "FALSE", "NULL", "NOW()", "CURRENT_TIMESTAMP", "INTERVAL '1 hour'",
    "INTERVAL '30' DAY", "INTERVAL '2 weeks'", "INTERVAL '-1 day'", "INTERVAL '1 month'",
    "$1", "*",
]  # fmt: skip
OPERATORS = [
    "=", "<>", "!=", "<", "<=", ">", ">=", "+", "-", "*", "/", "%", "AND", "OR", "||",
    "LIKE", "NOT LIKE", "ILIKE", "IS", "IS NOT",
]  # fmt: skip
JUNK = ["GROUP BY", ")", "(", "JOIN t", "SELECT", "'", ",", "ESCALATE TO", "::int", "--"]


def conditions(max_leaves: int = 10) -> st.SearchStrategy[str]:
    def paren(s: str, wrap: bool) -> str:
        return f"({s})" if wrap else s

    def extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        wrap = st.booleans()
        return st.one_of(
            # Without parentheses too, so that SQL's precedence decides the shape.
            st.builds(lambda a, op, b, w: f"{paren(a, w)} {op} {paren(b, w)}",
                      inner, st.sampled_from(OPERATORS), inner, wrap),
            st.builds(lambda a: f"NOT {a}", inner),
            st.builds(lambda a: f"-{a}", inner),
            st.builds(lambda a: f"({a})", inner),
            st.builds(lambda a, n: f"{a} IS {'NOT ' if n else ''}NULL", inner, st.booleans()),
            st.builds(lambda a, xs, n: f"{a} {'NOT ' if n else ''}IN ({', '.join(xs)})",
                      inner, st.lists(inner, max_size=3), st.booleans()),
            st.builds(lambda a, lo, hi: f"{a} BETWEEN {lo} AND {hi}", inner, inner, inner),
            st.builds(lambda f, xs: f"{f}({', '.join(xs)})",
                      st.sampled_from(["lower", "upper", "abs", "round", "coalesce", "length",
                                       "foo", "count", "now"]),
                      st.lists(inner, max_size=3)),
            st.builds(lambda c, v, d: f"CASE WHEN {c} THEN {v} ELSE {d} END", inner, inner, inner),
            st.builds(lambda s, j: f"{s} {j}", inner, st.sampled_from(JUNK)),
        )  # fmt: skip

    return st.recursive(st.sampled_from(LEAVES), extend, max_leaves=max_leaves)


@settings(max_examples=400, deadline=None)
@given(conditions())
def test_translations_print_as_rules_that_parse_back(sql: str) -> None:
    try:
        tree = parse_sql_condition(sql)
    except RuleError as exc:
        assert 0 <= exc.start < exc.end <= max(len(sql), exc.start + 1)
        return
    assert parse(to_text(tree)) == tree
    for node in tree.walk():
        assert 0 <= node.span[0] <= node.span[1] <= len(sql), (node, sql)


@settings(max_examples=100, deadline=None)
@given(conditions(6), st.sampled_from(["", " ESCALATE TO qa", " ESCALATE TO qa WITH PRIORITY 2"]))
def test_statements_parse_or_fail_with_a_rule_error(sql: str, action: str) -> None:
    text = f"-- generated\nCREATE RULE r AS SELECT * FROM t\nWHERE {sql}{action};\n"
    try:
        (rule,) = parse_sql_rules(text)
    except RuleError:
        return
    assert parse(to_text(rule.where)) == rule.where
    assert text[slice(*rule.where.span)].strip()
