"""``api_token create USERNAME`` prints a new API token once; ``api_token revoke USERNAME`` deletes it."""
from django.core.management.base import BaseCommand, CommandError

from api.errors import UnknownUser
from api.services import api_token_create, api_token_revoke


class Command(BaseCommand):
    help = ("Create (or replace) a user's API token and print it once, or revoke it. The token is sent as "
            "'Authorization: Bearer <token>' to /api/; only its SHA-256 digest is stored.")

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["create", "revoke"])
        parser.add_argument("username")

    def handle(self, *args, action, username, **options):
        if action == "revoke":
            found = api_token_revoke(username=username)
            self.stdout.write(f"token of {username} revoked" if found else f"{username} had no token")
            return
        try:
            token = api_token_create(username=username)
        except UnknownUser as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(token)
