"""The built-in actions, registered through the same hook as third-party ones."""

from __future__ import annotations

from tagloop.flows.actions.attributes import SetAttribute, SetPriority
from tagloop.flows.actions.base import Action
from tagloop.flows.actions.events import EmitEvent
from tagloop.flows.actions.notify import Notify
from tagloop.flows.actions.process import StartProcess
from tagloop.flows.actions.tags import AddTag, RemoveTag
from tagloop.flows.actions.webhook import Webhook
from tagloop.flows.actions.work_orders import CreateWorkOrder
from tagloop.hookspecs import hookimpl


@hookimpl
def tagloop_flow_actions() -> list[type[Action]]:
    return [
        Webhook,
        Notify,
        CreateWorkOrder,
        SetAttribute,
        SetPriority,
        AddTag,
        RemoveTag,
        StartProcess,
        EmitEvent,
    ]
