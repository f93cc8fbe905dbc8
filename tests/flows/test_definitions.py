"""Flow files as authors write them: what loads, and every mistake reported at its
file:line with what to do about it."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tagloop.errors import WorkspaceError
from tagloop.flows.calls import CallError, parse_call
from tagloop.flows.steps import ActionStep, IfStep, ParallelStep, WaitStep, WaitUntilStep
from tagloop.workspace import load_workspace
from tests.flows.conftest import ALIASES, SEED_FLOW, flow_workspace


def load(tmp_path: Path, text: str, aliases: str = ALIASES) -> object:
    return load_workspace(
        flow_workspace(tmp_path / "ws", "sqlite:///x.db", {"f.yaml": text}, aliases)
    )


def problems(tmp_path: Path, text: str, aliases: str = ALIASES) -> list[str]:
    with pytest.raises(WorkspaceError) as failed:
        load(tmp_path, text, aliases)
    return [f"{p.where}: {p.message}" for p in failed.value.problems]


def test_the_seed_flow_loads_with_its_aliases_expanded(tmp_path: Path) -> None:
    workspace = load(tmp_path, SEED_FLOW)
    flow = workspace.flows["VIP_Order_Processing"]  # type: ignore[attr-defined]
    assert (flow.entity_type, flow.trigger.describe()) == ("order", "event order_created")
    assert [c.text for c in flow.conditions] == ["customer.tags.contains('VIP')"]
    steps = [(s.path, s.action.name, s.label) for s in flow.steps]
    assert steps == [
        ("actions[0].skip_credit_check[0]", "set_attribute", "skip_credit_check"),
        ("actions[1].notify_manager[0]", "notify", "notify_manager"),
        ("actions[2]", "set_priority", "set_priority"),
    ]
    assert set(flow.aliases) == {"skip_credit_check", "notify_manager"}


def test_every_kind_of_step_loads(tmp_path: Path) -> None:
    text = """\
flow:
  name: all_steps
  trigger: {event: order_created}
  steps:
    - if: "event.amount > 100 and customer.tags.contains('VIP')"
      then: [set_priority(HIGH)]
      else:
        - action: set_priority
          level: LOW
    - wait: 2h
    - wait_until: "priority == 'URGENT'"
      timeout: 1d
      on_timeout:
        - {create_work_order: {title: "订单 {{ entity.id }} 超时", due: 4h}}
    - parallel:
        - emit_event(order_paid)
        - - set_attribute(credit_check, done)
          - remove_tag(VIP, on=customer)
"""
    flow = load(tmp_path, text).flows["all_steps"]  # type: ignore[attr-defined]
    kinds = [type(s) for s in flow.steps]
    assert kinds == [IfStep, WaitStep, WaitUntilStep, ParallelStep]
    branch = flow.steps[3].branches[1]
    assert [(s.path, s.action.name) for s in branch] == [
        ("steps[3].parallel[1][0]", "set_attribute"),
        ("steps[3].parallel[1][1]", "remove_tag"),
    ]
    assert isinstance(flow.steps[0].otherwise[0], ActionStep)
    assert flow.steps[2].timeout_us == 86_400_000_000


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            SEED_FLOW.replace('"skip_credit_check"', '"skip_credit_chek"'),
            "flows/f.yaml:7:7: unknown action 'skip_credit_chek' (did you mean "
            "'skip_credit_check'?) (actions: add_tag, create_work_order, emit_event, notify, "
            "remove_tag, set_attribute, set_priority, start_process, webhook; aliases are "
            "declared in actions/*.yaml)",
        ),
        (
            SEED_FLOW.replace("set_priority(HIGH)", "set_priority(HIGH, now)"),
            "flows/f.yaml:9:7: set_priority() takes 1 positional argument(s) (level), got 2",
        ),
        (
            SEED_FLOW.replace("set_priority(HIGH)", "set_priority(HIHG)"),
            "flows/f.yaml:9:7: set_priority(): level: Value error, 'HIHG' is not a priority "
            "(one of LOW, NORMAL, MEDIUM, HIGH, URGENT)",
        ),
        (
            SEED_FLOW.replace("set_priority(HIGH)", "set_priority(level=HIGH, levle=LOW)"),
            "flows/f.yaml:9:7: set_priority() has no argument 'levle' (did you mean 'level'?)",
        ),
        (
            SEED_FLOW.replace("customer.tags.contains('VIP')", "customer.tags.contains('VPI')"),
            "flows/f.yaml:5:31: unknown tag 'VPI' (did you mean 'VIP'?)",  # at the quote
        ),
        (
            SEED_FLOW.replace("customer.tags.contains('VIP')", "count(order_created) > 2"),
            "flows/f.yaml:5:7: flow conditions cannot aggregate events (count(order_created))"
            ": define a tag with it and test has_tag(...) or tag(...)",
        ),
        (
            SEED_FLOW.replace('"order_created"', '"order_craeted"'),
            "flows/f.yaml:3:12: unknown event type 'order_craeted' (did you mean 'order_created'?)",
        ),
        (
            SEED_FLOW.replace("customer.tags.contains('VIP')", "event.amout > 1"),
            "flows/f.yaml:5:8: unknown property 'amout' of order_created events (did you "
            "mean 'amount'?)",
        ),
        (
            SEED_FLOW.replace('- "set_priority(HIGH)"', "- {wait: soon}"),
            "flows/f.yaml:9:14: 'soon' is not a duration (examples: 30s, 10m, 1h, 30d, 2w)",
        ),
    ],
    ids=[
        "unknown-action",
        "too-many-args",
        "bad-arg-value",
        "unknown-arg",
        "unknown-tag",
        "aggregate",
        "unknown-event",
        "unknown-property",
        "bad-duration",
    ],
)
def test_mistakes_are_reported_where_they_are(tmp_path: Path, text: str, expected: str) -> None:
    assert problems(tmp_path, text) == [expected]


def test_an_alias_that_names_itself_is_refused(tmp_path: Path) -> None:
    aliases = "actions:\n  - {name: again, do: again}\n"
    flow = "flow:\n  name: f\n  trigger: order_created\n  actions: [again]\n"
    (found,) = problems(tmp_path, flow, aliases)
    assert "action aliases nest deeper than 8 levels at 'again'" in found


def test_an_alias_may_not_shadow_a_built_in_action(tmp_path: Path) -> None:
    aliases = "actions:\n  - {name: notify, do: set_priority(HIGH)}\n"
    flow = "flow:\n  name: f\n  trigger: order_created\n  actions: [set_priority(LOW)]\n"
    assert problems(tmp_path, flow, aliases) == [
        "actions/aliases.yaml:2:12: 'notify' is a built-in action: an alias needs another name"
    ]


# -- the call form ----------------------------------------------------------------------

CONSTANT_WORDS = {"true", "false", "null", "True", "False", "None"}
words = st.from_regex(r"[A-Za-z_\u4e00-\u9fa5][A-Za-z0-9_\u4e00-\u9fa5]{0,8}", fullmatch=True)
values = st.one_of(
    st.integers(-1000, 1000),
    st.text(max_size=10),
    st.booleans(),
    st.none(),
    words.filter(lambda w: w not in CONSTANT_WORDS),
)


def literal(value: object) -> str:
    # Text that reads as a constant when bare (None, true) is quoted, as a flow author must.
    if isinstance(value, str) and (not value.isidentifier() or value in CONSTANT_WORDS):
        return repr(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@given(words, st.lists(values, max_size=3), st.dictionaries(words, values, max_size=3))
def test_calls_parse_back_to_their_arguments(
    name: str, positional: list[object], named: dict[str, object]
) -> None:
    import keyword

    if keyword.iskeyword(name) or any(keyword.iskeyword(k) for k in named):
        return
    args = [literal(v) for v in positional] + [f"{k}={literal(v)}" for k, v in named.items()]
    call = parse_call(f"{name}({', '.join(args)})" if args else name)
    assert (call.name, call.positional, call.named) == (name, positional, named)


@pytest.mark.parametrize("text", ["notify(", "a.b()", "x(**y)", "x(1+2)", "f(lambda: 1)"])
def test_what_is_not_a_call_is_refused(text: str) -> None:
    with pytest.raises(CallError):
        parse_call(text)


def test_bare_words_keep_how_they_were_written() -> None:
    # Python folds identifiers to NFKC; a bare word is text and must stay as written.
    call = parse_call("notify(ﬁ=ª, to=[Ⅻ])")
    assert (call.named, call.positional) == ({"ﬁ": "ª", "to": ["Ⅻ"]}, [])
