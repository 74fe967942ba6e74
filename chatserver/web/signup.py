"""``POST /api/signup/``: a new account and its first tokens, when ALLOW_SIGNUP is on.

The body (JSON or form) has ``username`` and ``password``; the username goes through the user
model's own validator, the password through AUTH_PASSWORD_VALIDATORS. The answer is 201 with
``access`` and ``refresh`` as from ``POST /api/token/``, so the client is logged in at once; 400
lists what is wrong; 404 when sign-up is off; 429 past the per-address limit.
"""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.http import Http404, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from ..chat.auth.tokens import issue_token_pair
from ..chat.limits.login_throttle import client_address
from ..chat.request_bodies import form_or_json
from . import signup_throttle

TAKEN = "That username is taken."


def _errors(status, **fields):
    return JsonResponse({"detail": "Sign-up refused.", "errors": fields}, status=status)


def _username_errors(model, username):
    field = model._meta.get_field(model.USERNAME_FIELD)
    try:
        field.clean(username, None)
    except ValidationError as error:
        return error.messages
    if model.objects.filter(**{f"{model.USERNAME_FIELD}__iexact": username}).exists():
        return [TAKEN]
    return []


@csrf_exempt
@require_POST
def signup(request):
    if not getattr(settings, "ALLOW_SIGNUP", False):
        raise Http404("Sign-up is closed.")
    wait = signup_throttle.attempt(client_address(request))
    if wait is not None:
        response = JsonResponse(
            {"detail": f"Too many sign-ups; try again in {wait} s."}, status=429
        )
        response["Retry-After"] = str(wait)
        return response
    body = form_or_json(request)
    if body is None:
        return JsonResponse({"detail": "Body must be a JSON object."}, status=400)
    username, password = body.get("username"), body.get("password")
    if not isinstance(username, str) or not isinstance(password, str):
        return JsonResponse({"detail": "username and password are required strings."}, status=400)
    model = get_user_model()
    username = model.normalize_username(username.strip())
    errors = {}
    if problems := _username_errors(model, username):
        errors["username"] = problems
    try:
        validate_password(password, user=model(**{model.USERNAME_FIELD: username}))
    except ValidationError as error:
        errors["password"] = error.messages
    if errors:
        return _errors(400, **errors)
    try:
        with transaction.atomic():
            user = model.objects.create_user(**{model.USERNAME_FIELD: username}, password=password)
    except IntegrityError:  # the same name signed up a moment ago
        return _errors(400, username=[TAKEN])
    return JsonResponse(issue_token_pair(user), status=201)
