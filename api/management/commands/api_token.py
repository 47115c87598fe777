"""``api_token create USERNAME [--mixin-user-id UUID]`` prints a new API token once; ``api_token bind USERNAME
--mixin-user-id UUID`` binds the existing token; ``api_token revoke USERNAME`` deletes it."""
from django.core.management.base import BaseCommand, CommandError

from api.errors import ApiError
from api.services import api_token_bind, api_token_create, api_token_revoke


class Command(BaseCommand):
    help = ("Create (or replace) a user's API token and print it once, bind it to a Mixin user, or revoke it. "
            "The token is sent as 'Authorization: Bearer <token>' to /api/; only its SHA-256 digest is stored. "
            "A token sees and creates only the orders of its Mixin user.")

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["create", "bind", "revoke"])
        parser.add_argument("username")
        parser.add_argument("--mixin-user-id", dest="mixin_user_id", default=None,
                            help="the Mixin user id (UUID) whose orders the token sees and creates; create: "
                                 "default the replaced token's (none: the token sees no order); bind: required")

    def handle(self, *args, action, username, mixin_user_id, **options):
        try:
            if action == "revoke":
                found = api_token_revoke(username=username)
                self.stdout.write(f"token of {username} revoked" if found else f"{username} had no token")
            elif action == "bind":
                if mixin_user_id is None:
                    raise CommandError("bind needs --mixin-user-id UUID")
                api_token_bind(username=username, mixin_user_id=mixin_user_id)
                self.stdout.write(f"token of {username} bound to Mixin user {mixin_user_id}")
            else:
                self.stdout.write(api_token_create(username=username, mixin_user_id=mixin_user_id))
        except ApiError as exc:
            raise CommandError(str(exc)) from None
