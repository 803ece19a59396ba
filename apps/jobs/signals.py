"""Signals of media jobs: every applied state change of a StreamJob, whoever made it."""

from django.dispatch import Signal

# Sent (robustly: a failing receiver cannot undo or block the change) after a StreamJob
# transition applied; kwargs: job (refreshed from the database), fields (the names it wrote).
job_state_changed = Signal()
