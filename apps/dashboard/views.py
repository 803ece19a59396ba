"""The live dashboard's JSON state (/dashboard/state/), read again by the admin page whenever its
events socket (re)connects, so that nothing that happened in between is missed."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse

from apps.dashboard.services import dashboard_state as current_state


def dashboard_state(request: HttpRequest) -> JsonResponse:
    user = request.user
    if not (user.is_active and user.is_staff):
        return JsonResponse({"error": "Sign in to the admin as staff to see the dashboard."}, status=403)
    if request.method != "GET":
        return JsonResponse({"error": "Only GET is allowed."}, status=405)
    return JsonResponse(current_state())
