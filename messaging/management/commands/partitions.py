"""`manage.py partitions`: create the months ahead (idempotent); `--purge` drops the months
retention no longer keeps, then removes each workspace's rows its own shorter retention no longer
keeps; `--status` lists every partition with its rows and size. See README "Retention"."""

from django.core.management.base import BaseCommand, CommandError

from messaging import partitions, retention


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser):
        parser.add_argument("--ahead", type=int, default=None, help="months to create after the current one")
        parser.add_argument("--purge", action="store_true", help="drop the months past retention")
        parser.add_argument("--dry-run", action="store_true", help="with --purge: say what would go, drop nothing")
        parser.add_argument("--status", action="store_true", help="list the partitions")

    def handle(self, *args, ahead=None, purge=False, dry_run=False, status=False, **options):
        if not partitions.is_partitioned(partitions.MESSAGES):
            raise CommandError("messaging_message is not partitioned; run manage.py migrate first")
        if ahead is not None and not 0 <= ahead <= 24:
            raise CommandError("--ahead must be from 0 to 24")
        try:
            created = partitions.ensure_partitions(ahead=ahead)
        except partitions.PartitionError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"created: {', '.join(created)}" if created else "every month ahead exists")
        if purge:
            lines = partitions.purge(dry_run=dry_run).as_lines()
            lines += retention.workspace_retention_purge(dry_run=dry_run).as_lines(dry_run=dry_run)
            for line in lines or ["nothing to purge"]:
                self.stdout.write(line)
        if status:
            for row in partitions.status():
                self.stdout.write(
                    f"{row['partition']:<45} {row['rows']:>12,} rows {row['bytes'] / 2**20:>10.1f} MiB  {row['bounds']}"
                )
