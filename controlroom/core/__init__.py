"""The pure core: the event model, EventSub verification, the task contract, room names, roles
and tenant ids. Only the standard library and controlroom.errors; no I/O."""
