import threading

import pytest
from django.db import connection

from templates_app.models import Template, TemplateVersion
from templates_app.services import template_version_create
from tests.factories import TemplateFactory


@pytest.mark.django_db(transaction=True)
def test_concurrent_version_saves_get_distinct_consecutive_numbers(workspace):
    template = TemplateFactory(workspace=workspace)
    workers = 8
    barrier = threading.Barrier(workers)
    numbers, errors = [], []

    def save(index):
        try:
            barrier.wait(timeout=10)
            version = template_version_create(
                template=Template.objects.get(pk=template.pk), subject=f"v{index}", html="<p>{{ n }}</p>"
            )
            numbers.append(version.version)
        except Exception as exc:  # collected and asserted below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=save, args=(i,)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert errors == []
    assert sorted(numbers) == list(range(1, workers + 1))
    template.refresh_from_db()
    assert template.latest_version == workers
    assert TemplateVersion.objects.filter(template=template).count() == workers
