"""OME's JSON for media jobs: one module per domain app, named after it (``recording``, ``push``,
``pull``, ``hls_dump``; ``jobs`` for what every job shows). Each holds the request serializers that
validate a start/stop call and the ``*_to_ome`` presenter of the job; domain apps never import them."""
