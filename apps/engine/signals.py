"""Signals of the engine app: other apps (the live dashboard) react to an engine node's heartbeats."""

from django.dispatch import Signal

# Sent by the engine node after each heartbeat is stored; kwargs: node (EngineNode) and snapshots
# (the streams app's CounterSnapshot of every live stream of the node, possibly none).
node_heartbeat = Signal()
