"""Choices the user makes in passing (a folder, a checkbox, a microphone), kept at once.

A settings file that cannot be written is logged, not shown: the choice still holds for this run,
and a dialog for it would interrupt the work the choice was part of.
"""

from __future__ import annotations

import logging

from app.settings import AppSettings

log = logging.getLogger(__name__)


def remember(settings: AppSettings, name: str, value) -> None:
    """Set one setting and save the settings file."""
    setattr(settings, name, value)
    try:
        settings.save()
    except OSError as e:
        log.warning("saving settings: %s", e)
