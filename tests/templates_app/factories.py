import factory

from tests.factories import TemplateFactory, TemplateVersionFactory


class VersionedTemplateFactory(TemplateFactory):
    """A template with version 1 saved and marked latest, as version creation leaves it."""

    latest_version = 1

    class Meta:
        skip_postgeneration_save = True

    @factory.post_generation
    def version(self, create, extracted, **kwargs):
        if create:
            TemplateVersionFactory(template=self, version=1, **kwargs)


class TranslatedVersionFactory(TemplateVersionFactory):
    subject = "Order {{ order_id }}"
    html = "<p>Thanks, {{ name }}</p>"
    text = ""
    translations = factory.LazyFunction(
        lambda: {
            "de": {"subject": "Bestellung {{ order_id }}", "html": "<p>Danke, {{ name }}</p>", "text": ""},
            "pt-BR": {"subject": "Pedido {{ order_id }}", "html": "<p>Obrigado, {{ name }}</p>", "text": "Obrigado"},
            "pt": {"subject": "Encomenda {{ order_id }}", "html": "<p>Obrigado (pt), {{ name }}</p>", "text": ""},
        }
    )
