"""Bearer-token authentication of the API over ``api.models.ApiToken``: only the token's digest is stored
(DRF's own authtoken keeps tokens in clear), and ``request.auth`` is the token row, whose
``mixin_user_id`` decides which orders the request may see."""
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed

from .services import api_token_find

HINT = "authentication required: send 'Authorization: Bearer <token>' (manage.py api_token create USERNAME)"


class ApiTokenAuthentication(BaseAuthentication):
    """``Authorization: Bearer <token>``. No header: anonymous (refused by the views' permission, 401); any
    other scheme, an unknown or replaced token, or an inactive user: 401."""

    def authenticate(self, request):
        header = get_authorization_header(request)
        if not header:
            return None
        scheme, _, token = header.decode("latin-1").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or " " in token:
            raise AuthenticationFailed(HINT)
        row = api_token_find(token=token)
        if row is None or not row.user.is_active:
            raise AuthenticationFailed("unknown, replaced or revoked token, or an inactive user; " + HINT)
        return row.user, row

    def authenticate_header(self, request):
        # Makes DRF answer 401 (not 403) to a request without valid credentials.
        return 'Bearer realm="api"'
