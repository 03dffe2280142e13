"""`manage.py createapikey <username> [--create-user]`: print a new API key (and nothing else) on stdout."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from nodeclusters.services import api_key_create


class Command(BaseCommand):
    help = "Create an API key for a user and print it; the key cannot be shown again."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--create-user", action="store_true", help="Create the user if it does not exist.")
        parser.add_argument("--label", default="", help="A note to tell this key from the user's others.")

    def handle(self, *args, username, create_user, label, **options):
        user_model = get_user_model()
        user = user_model.objects.filter(**{user_model.USERNAME_FIELD: username}).first()
        if user is None:
            if not create_user:
                raise CommandError(f"No user {username!r}; pass --create-user to create one.")
            user = user_model.objects.create_user(**{user_model.USERNAME_FIELD: username})
        _, raw_key = api_key_create(user=user, label=label)
        self.stdout.write(raw_key)
