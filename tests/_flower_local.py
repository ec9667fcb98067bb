"""Test helpers: a Flower strategy and ClientApps in one process, and crafted replies.

:class:`LocalGrid` stands in for Flower's Grid: it hands each instruction
the strategy makes to a :class:`hefl.flower.local_app.LocalClientApp` node
and returns the replies, recording every message that crosses it. With it a
whole ``strategy.start()`` runs in-process in a second, so the strategy,
the mod and the example app can be tested without processes.
"""

import contextlib
import importlib
import sys
import time

from flwr.app import Error, Message, Metadata
from flwr.supercore.task_identity import TaskIdentity

from hefl.flower.launch import example_app

EXAMPLE_DIR = example_app()


def example(module):
    """A module of the example app (``task``, ``client_app``, ``server_app``)."""
    if str(EXAMPLE_DIR) not in sys.path:
        sys.path.insert(0, str(EXAMPLE_DIR))
    return importlib.import_module(f"flower_multitensor.{module}")


@contextlib.contextmanager
def server_identity():
    """The process-wide identity Flower's ServerApp runtime sets (Message() needs it)."""
    saved = (TaskIdentity._run_id, TaskIdentity._node_id, TaskIdentity._task_id)
    TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 0, 0, 0
    try:
        yield
    finally:
        TaskIdentity._run_id, TaskIdentity._node_id, TaskIdentity._task_id = saved


class LocalGrid:
    """A Grid whose nodes are a LocalClientApp's contexts; records all traffic.

    ``tamper(reply) -> reply`` may replace any reply before the strategy
    sees it (a faulty client).
    """

    def __init__(self, local, tamper=None):
        self.local, self.tamper = local, tamper
        self.instructions, self.replies = [], []

    def get_node_ids(self):
        return [c.node_id for c in self.local.contexts]

    def send_and_receive(self, messages, *, timeout=None):
        out = []
        for msg in messages:
            self.instructions.append(msg)
            reply = self.local.handle(msg)
            if self.tamper is not None:
                reply = self.tamper(reply)
            self.replies.append(reply)
            out.append(reply)
        return out


def reply_from(node_id, content, message_type="train", server_round=1):
    """A reply Message from node ``node_id``; ``content`` is a RecordDict or an Error."""
    md = Metadata(run_id=0, message_id="", src_node_id=node_id, dst_node_id=0,
                  reply_to_message_id=f"m-{node_id}-{server_round}", group_id=str(server_round),
                  created_at=time.time(), ttl=3600.0, message_type=message_type)
    if isinstance(content, Error):
        return Message(error=content, metadata=md)
    return Message(content=content, metadata=md)
