"""Flow actions: one module per action, each a small `Action` class with a typed argument
model, registered through the ``tagloop_flow_actions`` hook (see `tagloop.flows.registry`)."""
