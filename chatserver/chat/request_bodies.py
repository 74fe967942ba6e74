"""The body of a form or JSON POST, read one way by every HTTP endpoint of the app."""

import json


def form_or_json(request):
    """A JSON object's dict, or the form's QueryDict; None for JSON that is not an object."""
    if request.content_type == "application/json":
        try:
            payload = json.loads(request.body or b"{}")
        except ValueError:
            return None
        return payload if isinstance(payload, dict) else None
    return request.POST
