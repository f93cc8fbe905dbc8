"""The rule benchmark's workload: a workspace, its customers and events, and 200 rules.

Everything is drawn from one seeded `random.Random`, so the same options give the same
workspace, the same events (ids, times, values, arrival order) and the same rules. See
`bench/rules.py` for what is measured with it.
"""

from __future__ import annotations

import csv
import gzip
import math
import random
import textwrap
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from tagloop.ingest.event import Event
from tagloop.timeutil import to_us

TZ = ZoneInfo("Asia/Shanghai")
DAY = 86_400_000_000
MINUTE = 60_000_000
START = datetime(2024, 1, 1)
REVIEWS = Path("/work/shared/data/online_shopping_10_cats/online_shopping_10_cats.csv.gz")

# (province, city, weight): where customers live
CITIES = [
    ("上海", "上海", 12),
    ("北京", "北京", 11),
    ("广东", "广州", 8),
    ("广东", "深圳", 9),
    ("浙江", "杭州", 7),
    ("四川", "成都", 6),
    ("湖北", "武汉", 5),
    ("江苏", "南京", 5),
    ("江苏", "苏州", 4),
    ("陕西", "西安", 4),
    ("重庆", "重庆", 4),
    ("天津", "天津", 3),
    ("湖南", "长沙", 3),
    ("山东", "青岛", 3),
    ("福建", "厦门", 2),
    ("云南", "昆明", 2),
]
DISTRICTS = ["中心区", "高新区", "开发区", "老城区", "新区"]
LEVELS = [("bronze", 50), ("silver", 30), ("gold", 15), ("platinum", 5)]
GRADES = [("A", 10), ("B", 25), ("C", 40), ("D", 25)]  # 客户等级
# The ten product categories of the online_shopping_10_cats review corpus (shared/data).
CATEGORIES = ["书籍", "平板", "手机", "水果", "洗发水", "热水器", "蒙牛", "衣服", "计算机", "酒店"]
CHANNELS = [("app", 45), ("web", 25), ("mini_program", 20), ("store", 10)]
PAGES = ["home", "search", "product", "cart", "promo", "live", "help"]
DOMAINS = ["qq.com", "163.com", "gmail.com", "126.com", "sina.com", "company.cn"]
PHONES = ["138", "139", "186", "159", "177", "133"]
INTERESTS = ["运动", "美食", "旅行", "数码", "母婴", "美妆", "阅读", "游戏"]
LINES = ["L1", "L2", "L3", "L4"]
WINDOWS = ["7d", "14d", "30d", "60d", "90d", "180d", "365d"]
KIND_LABELS = {
    "attribute": "attribute-only",
    "aggregate": "windowed/filtered event aggregates",
    "streak": "calendar streak / every",
    "composite": "composite over other tags",
    "valued": "valued / bucket tags",
}

ENTITIES = """
entities:
  - name: customer
    description: 客户
    identifiers: [customer_id]
    fields:
      customer_id: string
      city: string
      level: string
      客户等级: {type: string, description: 客户等级 (CRM)}
      spend: number
      credit: integer
      vip: boolean
      signup: datetime
      birthday: date
      address: object
      email: string
      phone: string
      referrer: string
      interests: list
    events:
      order:
        properties:
          amount: number
          quantity: integer
          category: string
          sku: string
          channel: string
          coupon: boolean
      visit:
        properties:
          page: string
          channel: string
          seconds: number
      feedback:
        properties:
          score: integer
          category: string
          text: string
  - name: product_batch
    description: 生产批次
    fields:
      line: string
"""


@dataclass(frozen=True)
class Params:
    entities: int = 100_000
    events: int = 2_000_000
    months: int = 18
    rules: int = 200
    seed: int = 42
    batches: int = 2_000  # product batches that feedback relates to
    late: float = 0.01  # share of events that arrive late (minutes to days)

    @property
    def start(self) -> int:
        return to_us(START, TZ)

    @property
    def end(self) -> int:
        return self.start + int(self.months * 30.44 * DAY)


def write_workspace(root: Path, database: str, tags: list[dict[str, Any]]) -> Path:
    """The workspace folder: settings, the dictionary, and the generated tags."""
    (root / "entities").mkdir(parents=True, exist_ok=True)
    (root / "tags").mkdir(exist_ok=True)
    (root / "tagloop.yaml").write_text(
        f"name: bench-rules\ntimezone: Asia/Shanghai\ndatabase: '{database}'\n"
        "ingest: {max_future: 1d}\nengine: {timer_poll: 1s, now_tick: 1m}\n",
        encoding="utf-8",
    )
    (root / "entities" / "bench.yaml").write_text(textwrap.dedent(ENTITIES), encoding="utf-8")
    text = yaml.safe_dump({"tags": tags}, allow_unicode=True, sort_keys=False, width=1000)
    (root / "tags" / "bench.yaml").write_text(text, encoding="utf-8")
    return root


def _pick(rng: random.Random, weighted: list[tuple[Any, ...]]) -> Any:
    return rng.choices([w[0] for w in weighted], [w[-1] for w in weighted])[0]


# -- rules -------------------------------------------------------------------------------


def _attribute_rule(rng: random.Random) -> str:
    city = rng.choice(CITIES)
    two = rng.sample([c[1] for c in CITIES], 3)
    level = _pick(rng, LEVELS)
    grade = _pick(rng, GRADES)
    spend = rng.choice([1_000, 5_000, 10_000, 20_000, 50_000, 100_000])
    templates = [
        f"city == '{city[1]}'",
        f"city in {two!r}",
        f"客户等级 in ['A', '{grade}'] and spend >= {spend}",
        f"address.province == '{city[0]}' and level != 'bronze'",
        f"address.city == '{city[1]}' and 客户等级 == '{grade}'",
        f"spend between {spend} and {spend * 4}",
        f"email endswith '@{rng.choice(DOMAINS)}'",
        f"phone startswith '{rng.choice(PHONES)}' and credit > {rng.randrange(500, 750)}",
        f"email matches '^[a-z]+[0-9]{{{rng.randrange(2, 5)}}}@'",
        f"upper(level) == '{level.upper()}'",
        f"interests contains '{rng.choice(INTERESTS)}'",
        f"referrer is null and spend > {spend}",
        "referrer is not null and level in ['gold', 'platinum']",
        f"abs(credit - 650) < {rng.randrange(20, 80)}",
        f"round(spend / 1000, 1) > {rng.randrange(5, 60)}",
        f"max(spend / 100, credit) > {rng.randrange(600, 900)}",
        f"min(credit, 800) < {rng.randrange(450, 600)} and not vip",
        f"coalesce(referrer, 'none') == 'none' and city == '{city[1]}'",
        f"vip or level == '{level}'",
        f"not vip and spend > {spend} and credit >= {rng.randrange(600, 700)}",
        f"days_since(signup) > {rng.randrange(100, 900)}",
        f"hours_since(signup) < {rng.randrange(2_000, 9_000)} and level == '{level}'",
        f"spend * 0.01 + credit > {rng.randrange(700, 1500)}",
        f"credit % {rng.randrange(3, 9)} == 0",
        f"len(email) > {rng.randrange(14, 20)}",
        f"lower(address.district) == '{rng.choice(DISTRICTS)}' and vip",
        f"event_count >= {rng.choice([10, 20, 50, 100])}",
        f"last_seen > now() - {rng.choice(WINDOWS)}",
    ]
    return rng.choice(templates)


def _aggregate_rule(rng: random.Random) -> str:
    w, w2 = rng.choice(WINDOWS), rng.choice(WINDOWS)
    cat = rng.choice(CATEGORIES)
    ch = _pick(rng, CHANNELS)
    amount = rng.choice([50, 100, 200, 500, 1_000, 5_000])
    n = rng.randrange(1, 5)
    total = rng.choice([500, 1_000, 3_000, 10_000, 50_000, 200_000])
    templates = [
        f"count(order where amount > {amount}, {w}) >= {n}",
        f"sum(order.amount, {w}) > {total}",
        f"sum(order.amount where category == '{cat}', {w}) > {total // 10}",
        f"avg(order.amount where channel == '{ch}', {w}) > {amount}",
        f"max(order.amount, {w}) >= {amount * 5}",
        f"min(order.amount where quantity > 1, {w}) < {amount}",
        f"distinct(order.category, {w}) >= {n + 1}",
        f"first(order.channel) == '{ch}'",
        f"last(order.category) == '{cat}' and count(order, {w}) > 0",
        f"top(order.category, {w}) == '{cat}'",
        f"count(visit, {w}) >= {n + 2} and count(order, {w}) == 0",
        f"count(visit where page == 'cart', {w}) > {n} and sum(order.amount, {w}) < {amount}",
        f"count(feedback where score <= 2, {w}) >= 1",
        f"avg(feedback.score, {w}) < 3",
        f"days_since(last(order.time)) > {rng.choice([30, 60, 90, 180])}",
        f"last(order.time) > now() - {w}",
        f"sum(order.quantity where sku startswith 'SKU-1', {w}) > {n}",
        f"count(order where amount between {amount} and {amount * 5} and coupon, {w}) >= {n}",
        f"sum(order.amount, {w}) > spend * 0.2",
        f"count(order where channel in ['app', 'mini_program'], {w}) >= {n} "
        f"and count(order where channel == 'web', {w2}) == 0",
        f"sum(order.amount where category == '{cat}') > {total}",
        f"count(order, {w}) > count(visit, {w})",
        f"count(feedback where text contains '{rng.choice(['不错', '质量', '差', '满意'])}', "
        f"{w}) >= 1",
    ]
    return rng.choice(templates)


def _batch_rule(rng: random.Random) -> str:
    w = rng.choice(["7d", "30d", "90d"])
    return rng.choice(
        [
            f"count(feedback where score <= 2, {w}) >= {rng.randrange(2, 5)}",
            f"avg(feedback.score, {w}) < 2.5 and count(feedback, {w}) >= 3",
            f"count(feedback, {w}) >= {rng.randrange(5, 15)}",
            "streak(week, count(feedback where score <= 2) > 0) >= 2",
        ]
    )


def _streak_rule(rng: random.Random) -> str:
    cat = rng.choice(CATEGORIES)
    return rng.choice(
        [
            f"streak(month, sum(order.amount) > {rng.choice([2_000, 10_000, 500_000])}) >= "
            f"{rng.randrange(2, 5)}",
            "streak(month, sum(order.amount) > 500000) >= 3",
            f"every({rng.randrange(2, 6)} months, count(order) >= 1)",
            f"streak(week, count(visit) > 0) >= {rng.randrange(2, 6)}",
            f"every({rng.randrange(2, 4)} quarters, "
            f"sum(order.amount) > {rng.choice([1_000, 5_000])})",
            f"streak(month, count(order where category == '{cat}') > 0) >= 2",
            f"streak(day, count(order) > 0) >= {rng.randrange(2, 4)}",
            f"every(2 months, avg(order.amount) > {rng.choice([200, 500])}) and vip",
        ]
    )


def _valued(rng: random.Random, name: str) -> dict[str, Any]:
    w = rng.choice(WINDOWS)
    hi, mid = rng.choice([(100_000, 10_000), (20_000, 2_000), (5_000, 500)])
    choices: list[dict[str, Any]] = [
        {
            "value": f"case when sum(order.amount, {w}) >= {hi} then '高' "
            f"when sum(order.amount, {w}) >= {mid} then '中' else '低' end"
        },
        {"rule": f"count(order, {w}) > 0", "value": f"sum(order.amount, {w})"},
        {"value": f"top(order.category, {w})"},
        {
            "value": "case when days_since(last(order.time)) <= 30 then '活跃' "
            "when days_since(last(order.time)) <= 90 then '沉睡' else '流失' end"
        },
        {"value": f"round(avg(order.amount, {w}), 0)"},
        {"value": "streak(month, count(order) > 0)"},
        {"value": f"distinct(order.category, {w})"},
        {
            "rule": f"spend > {mid}",
            "value": "case when 客户等级 == 'A' then '重点' when 客户等级 == 'B' then '关注' "
            "else '普通' end",
        },
        {"value": f"count(order where amount > {mid // 10}, {w}) + count(visit, {w})"},
        {"value": "last(order.channel)"},
    ]
    return {"name": name, **rng.choice(choices)}


def _composite_rule(rng: random.Random, booleans: list[str], valued: list[tuple[str, str]]) -> str:
    a, c = rng.sample(booleans, 2)
    city = rng.choice(CITIES)[1]
    options = [
        f"has_tag('{a}') and has_tag('{c}')",
        f"has_tag('{a}') and not has_tag('{c}')",
        f"(has_tag('{a}') or has_tag('{c}')) and city == '{city}'",
        f"tags.contains('{a}') and spend > 10000",
    ]
    strings = [n for n, kind in valued if kind == "bucket"]
    numbers = [n for n, kind in valued if kind == "number"]
    if strings:
        options.append(f"tag('{rng.choice(strings)}') == '高' and has_tag('{a}')")
    if numbers:
        options.append(f"coalesce(tag('{rng.choice(numbers)}'), 0) > 1000 or has_tag('{c}')")
    return rng.choice(options)


def generate_rules(count: int, seed: int) -> tuple[list[dict[str, Any]], Counter[str]]:
    """``count`` tags: ~30% attribute-only, ~40% aggregates, ~10% streaks, ~10% valued,
    ~10% composite (reading earlier tags); the same ``seed`` gives the same tags."""
    rng = random.Random(seed * 7919 + 1)
    quota = {
        "attribute": round(count * 0.3),
        "aggregate": round(count * 0.4),
        "streak": round(count * 0.1),
        "valued": round(count * 0.1),
    }
    quota["composite"] = count - sum(quota.values())
    tags: list[dict[str, Any]] = []
    kinds: Counter[str] = Counter()
    seen: set[str] = set()
    booleans: list[str] = []
    valued: list[tuple[str, str]] = []
    for kind in ["attribute", "aggregate", "streak", "valued", "composite"]:
        for i in range(quota[kind]):
            for _ in range(100):  # redraw duplicates
                entity = "customer"
                if kind == "valued":
                    spec = _valued(rng, f"值_{len(tags):03d}")
                    key = f"{spec.get('rule')}|{spec['value']}"
                else:
                    if kind == "attribute":
                        rule = _attribute_rule(rng)
                    elif kind == "aggregate" and i % 20 == 19:
                        rule, entity = _batch_rule(rng), "product_batch"
                    elif kind == "aggregate":
                        rule = _aggregate_rule(rng)
                    elif kind == "streak":
                        rule = _streak_rule(rng)
                    else:
                        rule = _composite_rule(rng, booleans, valued)
                    spec = {"name": f"{kind[:4]}_{len(tags):03d}", "rule": rule}
                    key = rule
                if key not in seen:
                    break
            seen.add(key)
            spec = {"name": spec.pop("name"), "entity": entity, **spec}
            spec["category"] = f"bench > {kind}"
            tags.append(spec)
            kinds[kind] += 1
            if entity == "customer" and "value" not in spec:
                booleans.append(spec["name"])
            elif "value" in spec:
                bucket = "'高'" in spec["value"]
                number = spec["value"].startswith(("sum(", "count(", "round("))
                valued.append(
                    (spec["name"], "bucket" if bucket else "number" if number else "other")
                )
    return tags, kinds


# -- events ------------------------------------------------------------------------------


@dataclass
class Customer:
    id: str
    weight: float
    scale: float  # order amounts are multiplied by this (enterprise buyers)
    favourite: str  # category they buy most


def _reviews(rng: random.Random) -> list[tuple[str, int, str]]:
    """(category, label, short text) from the shared review corpus, or a stand-in."""
    found: list[tuple[str, int, str]] = []
    if REVIEWS.exists():
        with gzip.open(REVIEWS, "rt", encoding="utf-8-sig") as handle:
            for row in csv.DictReader(handle):
                text = (row.get("review") or "").strip().lstrip("\ufeff")
                if text:
                    found.append((row["cat"], int(row["label"]), text[:40]))
    if not found:
        for cat in CATEGORIES:
            found += [(cat, 1, "质量不错，很满意"), (cat, 0, "质量差，不满意")]
    rng.shuffle(found)
    return found[:5_000]


def customers(params: Params) -> list[Customer]:
    rng = random.Random(params.seed)
    out = []
    for i in range(params.entities):
        weight = min(rng.paretovariate(1.3), 200.0)
        enterprise = rng.random() < 0.004
        out.append(
            Customer(
                f"C{i:06d}",
                weight * (15 if enterprise else 1),
                rng.choice([80.0, 150.0]) if enterprise else 1.0,
                rng.choice(CATEGORIES),
            )
        )
    return out


def _profile(rng: random.Random, start: int) -> dict[str, Any]:
    province, city, _ = _pick(rng, [(c, c[2]) for c in CITIES])
    name = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randrange(3, 9)))
    signup = start - rng.randrange(0, 1_500) * DAY + rng.randrange(DAY)
    attributes: dict[str, Any] = {
        "customer_id": f"ERP-{rng.randrange(10**7):07d}",
        "city": city,
        "level": _pick(rng, LEVELS),
        "客户等级": _pick(rng, GRADES),
        "spend": round(rng.lognormvariate(8.5, 1.3), 2),
        "credit": rng.randrange(350, 900),
        "vip": rng.random() < 0.12,
        "signup": datetime.fromtimestamp(signup / 1e6, TZ).isoformat(timespec="seconds"),
        "birthday": f"{rng.randrange(1955, 2006)}-{rng.randrange(1, 13):02d}-"
        f"{rng.randrange(1, 29):02d}",
        "address": {
            "province": province,
            "city": city,
            "district": rng.choice(DISTRICTS),
            "zip": f"{rng.randrange(100000, 999999)}",
        },
        "email": f"{name}{rng.randrange(10, 99999)}@{rng.choice(DOMAINS)}",
        "phone": f"{rng.choice(PHONES)}{rng.randrange(10**8):08d}",
        "interests": rng.sample(INTERESTS, rng.randrange(0, 4)),
    }
    if rng.random() < 0.6:
        attributes["referrer"] = f"C{rng.randrange(100_000):06d}"
    return attributes


def generate_events(params: Params) -> tuple[list[Event], list[int]]:
    """``params.events`` events in arrival order, and each one's arrival time (µs).

    Each customer starts with an `identify` event setting its profile (in the first two
    months); the rest are orders (55%), visits (33%), feedback about a product batch (7%)
    and profile updates (5%), at uniform times over ``months``, drawn among customers with
    Pareto weights (a few enterprise buyers order large amounts often). Most events arrive
    within seconds of their time; ``late`` of them arrive minutes to three days later.
    """
    rng = random.Random(params.seed + 1)
    people = customers(params)
    reviews = _reviews(rng)
    start, end = params.start, params.end
    span = end - start
    drafts: list[tuple[int, int, Event]] = []  # (arrival, time, event)

    def add(event: Event) -> None:
        delay = rng.randrange(1_000_000, 5_000_000)
        if rng.random() < params.late:
            delay = rng.randrange(MINUTE, 3 * DAY)
        arrival = min(event.time + delay, end + DAY)
        drafts.append((arrival, event.time, event))

    initial = min(params.entities, params.events)
    for person in people[:initial]:
        when = start + rng.randrange(60 * DAY)
        add(
            Event(
                f"id-{person.id}",
                "identify",
                "customer",
                person.id,
                when,
                attributes=_profile(rng, start),
            )
        )
    chosen = rng.choices(people, [p.weight for p in people], k=params.events - initial)
    for n, person in enumerate(chosen):
        when = start + rng.randrange(span)
        roll = rng.random()
        eid = f"e{n:08d}"
        if roll < 0.55:
            channel = _pick(rng, CHANNELS)
            category = person.favourite if rng.random() < 0.4 else rng.choice(CATEGORIES)
            amount = round(rng.lognormvariate(5.3, 1.0) * person.scale, 2)
            event = Event(
                eid,
                "order",
                "customer",
                person.id,
                when,
                properties={
                    "amount": amount,
                    "quantity": rng.randrange(1, 6),
                    "category": category,
                    "sku": f"SKU-{rng.randrange(20_000)}",
                    "channel": channel,
                    "coupon": rng.random() < 0.25,
                },
            )
        elif roll < 0.88:
            event = Event(
                eid,
                "visit",
                "customer",
                person.id,
                when,
                properties={
                    "page": rng.choice(PAGES),
                    "channel": _pick(rng, CHANNELS),
                    "seconds": round(rng.expovariate(1 / 90), 1),
                },
            )
        elif roll < 0.95:
            category, label, text = rng.choice(reviews)
            score = rng.randrange(3, 6) if label else rng.randrange(1, 4)
            event = Event(
                eid,
                "feedback",
                "customer",
                person.id,
                when,
                properties={"score": score, "category": category, "text": text},
                related={"product_batch": f"B{rng.randrange(params.batches):05d}"},
            )
        else:
            update: dict[str, Any] = {"spend": round(rng.lognormvariate(8.5, 1.3), 2)}
            if rng.random() < 0.3:
                update["level"] = _pick(rng, LEVELS)
            if rng.random() < 0.2:
                update["客户等级"] = _pick(rng, GRADES)
            if rng.random() < 0.1:
                update["vip"] = rng.random() < 0.3
            event = Event(eid, "identify", "customer", person.id, when, attributes=update)
        add(event)
    drafts.sort(key=lambda d: (d[0], d[1]))
    return [d[2] for d in drafts], [d[0] for d in drafts]


def late_share(events: list[Event]) -> float:
    """Share of events whose time is before that of an event that arrived earlier."""
    latest, late = -math.inf, 0
    for event in events:
        if event.time < latest:
            late += 1
        latest = max(latest, event.time)
    return late / max(len(events), 1)
