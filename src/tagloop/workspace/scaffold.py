"""The files ``tagloop init`` writes: a valid, commented starting point."""

from __future__ import annotations

from pathlib import Path

PROJECT = """\
# tagloop workspace settings (docs/workspace.md)
name: {name}
timezone: {timezone}          # calendar logic (months, weeks) uses this zone
database: {database}          # TAGLOOP_DATABASE_URL overrides it
"""

CUSTOMER = """\
# An entity type: its fields (type, description, owner, pii) and the events it receives.
name: customer
description: 客户
owner: 销售运营部
identifiers: [customer_id]
fields:
  customer_id: {type: string, description: ERP customer number}
  name: {type: string, description: 姓名, pii: true}
  city: {type: string, description: 城市}
  客户等级: {type: string, description: 客户等级}
events:
  order:
    description: 订单
    properties:
      amount: number
"""

TAGS = """\
# Tags: a rule over the entity's profile; assigned while the rule is true.
tags:
  - name: 上海客户
    entity: customer
    category: 地域 > 城市
    owner: 市场部
    description: Customers in Shanghai
    rule: city == '上海'
"""


def scaffold(root: Path, name: str, timezone: str, database: str) -> None:
    for folder in ("entities", "tags", "sources"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    (root / "tagloop.yaml").write_text(
        PROJECT.format(name=name, timezone=timezone, database=database), encoding="utf-8"
    )
    (root / "entities" / "customer.yaml").write_text(CUSTOMER, encoding="utf-8")
    (root / "tags" / "customer.yaml").write_text(TAGS, encoding="utf-8")
    (root / ".gitignore").write_text("*.db\n*.db-wal\n*.db-shm\n", encoding="utf-8")
