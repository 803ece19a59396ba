"""Mixer layouts, named as WCS's mixerLayoutClass values (with or without their Java package)."""

from django.db import models

LAYOUT_PACKAGE = "com.flashphoner.mixerlayout."


class Layout(models.TextChoices):
    GRID = "grid", "Grid (columns = ceil(sqrt(n)))"
    HORIZONTAL = "horizontal", "One row"
    VERTICAL = "vertical", "One column"


# mixerLayoutClass -> layout (compared case-insensitively, without LAYOUT_PACKAGE).
LAYOUT_CLASSES = {
    "gridlayout": Layout.GRID,
    "grid": Layout.GRID,
    "horizontallayout": Layout.HORIZONTAL,
    "horizontal": Layout.HORIZONTAL,
    "verticallayout": Layout.VERTICAL,
    "vertical": Layout.VERTICAL,
}


def layout_of(layout_class: str) -> str:
    """The layout a mixerLayoutClass names; ValueError listing the choices otherwise."""
    key = layout_class.strip()
    if key.lower().startswith(LAYOUT_PACKAGE):
        key = key[len(LAYOUT_PACKAGE) :]
    try:
        return LAYOUT_CLASSES[key.lower()]
    except KeyError:
        raise ValueError(
            f"mixerLayoutClass {layout_class!r} is not one of GridLayout, HorizontalLayout, VerticalLayout"
        ) from None
