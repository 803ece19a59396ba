"""The floor of bench/api_throughput.py: StreamHub's settings and URLs plus one bare Django view."""
