import json

from django.core.management.base import BaseCommand, CommandError

from senders.models import Sender
from senders.services import IllegalTransition, sender_review


class Command(BaseCommand):
    help = "Approve, pause or resume a sender (what the admin console's actions do) and print it as one JSON line."

    def add_arguments(self, parser):
        parser.add_argument("sender_id")
        verbs = parser.add_mutually_exclusive_group(required=True)
        for verb in ("approve", "pause", "resume"):
            verbs.add_argument(f"--{verb}", dest="verb", action="store_const", const=verb)
        parser.add_argument("--reason", default="", help="Why; recorded in the sender's state history.")

    def handle(self, *args, sender_id, verb, reason, **options):
        sender = Sender.objects.filter(pk=sender_id).first()
        if sender is None:
            raise CommandError(f"No sender {sender_id}.")
        try:
            sender_review(sender=sender, verb=verb, reason=reason, actor_label="command")
        except IllegalTransition as exc:
            raise CommandError(f"Cannot {verb} sender {sender_id}: it is {exc.sender.state}.") from exc
        self.stdout.write(json.dumps({"id": sender.id, "state": sender.state, "state_reason": sender.state_reason}))
