"""Messages of the console in Simplified Chinese and English, and localised formatting.

The language is, first found: the ``lang`` cookie (set by the switch in the page header),
then the browser's ``Accept-Language`` (Chinese when it asks for any ``zh`` before
English), else English. Times are shown in the workspace time zone (Asia/Shanghai by
default), numbers with the thousands separator both languages use.
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import Any

from tagloop.timeutil import from_us

LANGUAGES = ("zh", "en")
DEFAULT = "en"
COOKIE = "tagloop_lang"

# Every key exists in both languages: tests/console/test_i18n.py checks it.
MESSAGES: dict[str, dict[str, str]] = {
    "zh": {
        "app": "tagloop 控制台",
        "skip": "跳到正文",
        "nav.overview": "总览",
        "nav.tags": "标签目录",
        "nav.entities": "实体档案",
        "nav.flows": "流程",
        "nav.sources": "数据源",
        "nav.api": "API 文档",
        "lang.switch": "English",
        "signin.title": "登录",
        "signin.username": "用户名",
        "signin.password": "密码",
        "signin.submit": "登录",
        "signin.failed": "用户名或密码错误",
        "signout": "退出登录",
        "signed_in_as": "当前用户",
        "error.title": "出错了",
        "error.back": "返回总览",
        "error.forbidden": "您没有执行此操作的权限",
        "error.not_found": "找不到该页面",
        "overview.title": "总览",
        "overview.events_now": "当前事件速率（条/秒，近 1 分钟）",
        "overview.events_24h": "近 24 小时事件",
        "overview.entities": "各类型实体数",
        "overview.tag_changes": "每小时标签变更（近 24 小时）",
        "overview.flows": "近 24 小时流程运行",
        "overview.flows_run": "已运行",
        "overview.flows_failed": "失败",
        "overview.sources": "数据源健康",
        "overview.refreshed": "每 5 秒自动刷新",
        "tags.title": "标签目录",
        "tags.tree": "标签体系",
        "tags.search": "搜索标签（中文或英文）",
        "tags.search_button": "搜索",
        "tags.entity": "实体类型",
        "tags.all": "全部",
        "tags.name": "标签",
        "tags.category": "分类",
        "tags.kind": "类型",
        "tags.owner": "负责人",
        "tags.coverage": "覆盖率",
        "tags.holders": "持有数",
        "tags.last_change": "最近变更",
        "tags.none": "没有符合条件的标签",
        "tags.uncategorised": "未分类",
        "tags.trend": "趋势",
        "tags.trend_label": "近 {days} 天覆盖率 {start} → {end}",
        "kind.rule": "规则",
        "kind.model": "模型",
        "kind.manual": "人工",
        "kind.sql": "SQL",
        "page.previous": "上一页",
        "page.next": "下一页",
        "page.of": "第 {page} 页，共 {pages} 页（{total} 条）",
        "entities.title": "实体档案",
        "entities.find": "查找实体",
        "entities.type": "实体类型",
        "entities.id": "实体 ID",
        "entities.find_button": "查找",
        "entities.not_found": "找不到该实体",
        "entities.attributes": "属性",
        "entities.tags": "标签",
        "entities.value": "值",
        "entities.since": "起始",
        "entities.source": "来源",
        "entities.why": "为什么有这个标签？",
        "entities.timeline": "时间线",
        "entities.event": "事件",
        "entities.tag_change": "标签变更",
        "entities.work_orders": "未完成工单",
        "entities.no_work_orders": "没有未完成的工单",
        "entities.first_seen": "首次出现",
        "entities.last_seen": "最近出现",
        "entities.event_count": "事件数",
        "entities.scores": "模型评分",
        "entities.model": "模型",
        "entities.score": "评分",
        "entities.threshold": "阈值",
        "entities.prediction": "预测",
        "entities.positive": "是（达到阈值）",
        "entities.negative": "否（低于阈值）",
        "entities.predicts": "预测目标：",
        "entities.predicts_reviews": "预测目标：对标签 {tag} 的审核结论",
        "entities.model_version": "模型版本",
        "entities.scored_at": "评分时间",
        "entities.no_scores": "该实体还没有模型评分",
        "explain.rule": "规则",
        "explain.holds": "当前是否满足",
        "explain.stored": "分配时记录的证据",
        "explain.now": "现在读取的值",
        "explain.yes": "是",
        "explain.no": "否",
        "flows.title": "流程",
        "flows.name": "流程",
        "flows.trigger": "触发",
        "flows.conditions": "条件",
        "flows.actions": "动作",
        "flows.definition": "定义",
        "flows.diagram": "流程图",
        "flows.runs": "最近运行",
        "flows.failed_runs": "失败的运行",
        "flows.run": "运行",
        "flows.status": "状态",
        "flows.entity": "实体",
        "flows.created": "创建时间",
        "flows.error": "错误",
        "flows.trace": "执行轨迹",
        "flows.step": "步骤",
        "flows.retry": "重试",
        "flows.retried": "已重新排队",
        "flows.no_runs": "暂无运行",
        "sources.title": "数据源",
        "sources.name": "名称",
        "sources.kind": "种类",
        "sources.state": "状态",
        "sources.read": "已读取",
        "sources.written": "已写入事件",
        "sources.rejected": "死信",
        "sources.lag": "延迟（秒）",
        "sources.last_success": "最近成功",
        "sources.last_error": "最近错误",
        "sources.dead_letters": "死信",
        "sources.replay": "重放死信",
        "sources.replayed": "已重放 {count} 条",
        "sources.no_letters": "没有待处理的死信",
        "sources.location": "位置",
        "sources.received": "接收时间",
    },
    "en": {
        "app": "tagloop console",
        "skip": "Skip to content",
        "nav.overview": "Overview",
        "nav.tags": "Tag catalogue",
        "nav.entities": "Entity profiles",
        "nav.flows": "Flows",
        "nav.sources": "Sources",
        "nav.api": "API docs",
        "lang.switch": "中文",
        "signin.title": "Sign in",
        "signin.username": "Username",
        "signin.password": "Password",
        "signin.submit": "Sign in",
        "signin.failed": "Invalid username or password",
        "signout": "Sign out",
        "signed_in_as": "Signed in as",
        "error.title": "Something went wrong",
        "error.back": "Back to the overview",
        "error.forbidden": "You do not have the permission for this",
        "error.not_found": "No such page",
        "overview.title": "Overview",
        "overview.events_now": "Events per second now (last minute)",
        "overview.events_24h": "Events over the last 24 hours",
        "overview.entities": "Entities per type",
        "overview.tag_changes": "Tag changes per hour (last 24 hours)",
        "overview.flows": "Flow runs over the last 24 hours",
        "overview.flows_run": "Run",
        "overview.flows_failed": "Failed",
        "overview.sources": "Source health",
        "overview.refreshed": "Refreshes every 5 seconds",
        "tags.title": "Tag catalogue",
        "tags.tree": "Taxonomy",
        "tags.search": "Search tags (Chinese or English)",
        "tags.search_button": "Search",
        "tags.entity": "Entity type",
        "tags.all": "All",
        "tags.name": "Tag",
        "tags.category": "Category",
        "tags.kind": "Kind",
        "tags.owner": "Owner",
        "tags.coverage": "Coverage",
        "tags.holders": "Holders",
        "tags.last_change": "Last change",
        "tags.none": "No tag matches",
        "tags.uncategorised": "Uncategorised",
        "tags.trend": "Trend",
        "tags.trend_label": "coverage {start} → {end} over {days} days",
        "kind.rule": "rule",
        "kind.model": "model",
        "kind.manual": "manual",
        "kind.sql": "SQL",
        "page.previous": "Previous",
        "page.next": "Next",
        "page.of": "Page {page} of {pages} ({total} items)",
        "entities.title": "Entity profiles",
        "entities.find": "Find an entity",
        "entities.type": "Entity type",
        "entities.id": "Entity id",
        "entities.find_button": "Find",
        "entities.not_found": "No such entity",
        "entities.attributes": "Attributes",
        "entities.tags": "Tags",
        "entities.value": "Value",
        "entities.since": "Since",
        "entities.source": "Source",
        "entities.why": "Why does it have this tag?",
        "entities.timeline": "Timeline",
        "entities.event": "Event",
        "entities.tag_change": "Tag change",
        "entities.work_orders": "Open work orders",
        "entities.no_work_orders": "No open work orders",
        "entities.first_seen": "First seen",
        "entities.last_seen": "Last seen",
        "entities.event_count": "Events",
        "entities.scores": "Model scores",
        "entities.model": "Model",
        "entities.score": "Score",
        "entities.threshold": "Threshold",
        "entities.prediction": "Prediction",
        "entities.positive": "Yes (at or above the threshold)",
        "entities.negative": "No (below the threshold)",
        "entities.predicts": "Predicts:",
        "entities.predicts_reviews": "Predicts: the review decisions on tag {tag}",
        "entities.model_version": "Model version",
        "entities.scored_at": "Scored",
        "entities.no_scores": "No model has scored this entity yet",
        "explain.rule": "Rule",
        "explain.holds": "Holds now",
        "explain.stored": "Evidence recorded when assigned",
        "explain.now": "Values read now",
        "explain.yes": "yes",
        "explain.no": "no",
        "flows.title": "Flows",
        "flows.name": "Flow",
        "flows.trigger": "Trigger",
        "flows.conditions": "Conditions",
        "flows.actions": "Actions",
        "flows.definition": "Definition",
        "flows.diagram": "Diagram",
        "flows.runs": "Recent runs",
        "flows.failed_runs": "Failed runs",
        "flows.run": "Run",
        "flows.status": "Status",
        "flows.entity": "Entity",
        "flows.created": "Created",
        "flows.error": "Error",
        "flows.trace": "Trace",
        "flows.step": "Step",
        "flows.retry": "Retry",
        "flows.retried": "Queued again",
        "flows.no_runs": "No runs yet",
        "sources.title": "Sources",
        "sources.name": "Name",
        "sources.kind": "Kind",
        "sources.state": "State",
        "sources.read": "Records read",
        "sources.written": "Events written",
        "sources.rejected": "Dead letters",
        "sources.lag": "Lag (s)",
        "sources.last_success": "Last success",
        "sources.last_error": "Last error",
        "sources.dead_letters": "Dead letters",
        "sources.replay": "Replay dead letters",
        "sources.replayed": "Replayed {count}",
        "sources.no_letters": "No pending dead letters",
        "sources.location": "Location",
        "sources.received": "Received",
    },
}


def negotiate(cookie: str | None, accept_language: str | None) -> str:
    """The language of a request.

    >>> negotiate(None, "zh-CN,zh;q=0.9,en;q=0.8")
    'zh'
    >>> negotiate(None, "en-GB,en;q=0.9,zh;q=0.5")
    'en'
    >>> negotiate("en", "zh-CN")
    'en'
    """
    if cookie in LANGUAGES:
        return str(cookie)
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        ranked.append((-quality, index, tag.strip().lower()))
    for _, _, tag in sorted(ranked):
        primary = tag.split("-")[0]
        if primary in LANGUAGES:
            return primary
    return DEFAULT


class Locale:
    """What templates call: ``t(key)``, ``number(n)``, ``time(us)``."""

    def __init__(self, lang: str, tz: tzinfo) -> None:
        self.lang = lang
        self.tz = tz
        self._messages = MESSAGES[lang]

    def t(self, key: str, **values: Any) -> str:
        """The message for ``key`` (the key itself if missing, so a gap shows, not fails)."""
        text = self._messages.get(key, key)
        return text.format(**values) if values else text

    def number(self, value: float | int | None, digits: int = 0) -> str:
        """``12,345`` (both languages group by thousands in the console)."""
        if value is None:
            return "–"
        return f"{value:,.{digits}f}"

    def percent(self, value: float | None) -> str:
        return "–" if value is None else f"{value * 100:.1f}%"

    def time(self, value: int | str | None) -> str:
        """A time (µs, or the API's ISO 8601 text) in the workspace zone:
        ``2025年3月1日 08:00`` or ``1 Mar 2025 08:00``."""
        if value is None or value == "":
            return "–"
        if isinstance(value, str):
            try:
                moment = datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(self.tz)
            except ValueError:
                return value
        else:
            moment = from_us(int(value), self.tz)
        if self.lang == "zh":
            return f"{moment.year}年{moment.month}月{moment.day}日 {moment:%H:%M}"
        return f"{moment.day} {moment:%b %Y %H:%M}"
