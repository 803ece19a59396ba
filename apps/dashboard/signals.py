"""Every engine heartbeat is passed on to the live dashboard as a "stats" event."""

from django.dispatch import receiver

from apps.dashboard.services import publish_stream_stats
from apps.engine.signals import node_heartbeat


@receiver(node_heartbeat, dispatch_uid="dashboard-stream-stats")
def pass_heartbeat_to_dashboards(sender, node, snapshots, **kwargs) -> None:
    publish_stream_stats(node.node_id, snapshots)
