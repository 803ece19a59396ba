"""StreamHub's media engine: live stream protocols and packaging, with no Django imports.

The engine talks to the control plane (Django) only through `media_engine.control.ControlPlane`.
"""
