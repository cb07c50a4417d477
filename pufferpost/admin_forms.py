"""Admin form fields: rates typed and shown as percentages, counts in inputs wide enough for them."""

from decimal import Decimal

from django import forms

HUNDRED = Decimal(100)


class PercentInput(forms.NumberInput):
    """A number input followed by a "%" sign."""

    template_name = "admin/widgets/percent_input.html"

    def __init__(self, attrs=None):
        super().__init__({"class": "pp-percent", "step": "0.01", "min": "0", "max": "100", **(attrs or {})})


class PercentField(forms.DecimalField):
    """A rate stored as a fraction (0.0500) and typed and shown as a percentage (5.00).

    The bounds and the two decimal places apply to the percentage, so the messages speak in the
    unit the operator typed; `clean` hands the model the fraction.
    """

    widget = PercentInput

    def __init__(self, **kwargs):
        kwargs.pop("max_digits", None)
        kwargs.pop("decimal_places", None)
        super().__init__(min_value=0, max_value=100, max_digits=5, decimal_places=2, **kwargs)

    def prepare_value(self, value):
        # The model's fraction (initial) becomes a percentage; what the operator typed stays as typed.
        if isinstance(value, Decimal):
            return f"{value * HUNDRED:.2f}".rstrip("0").rstrip(".")
        return value

    def clean(self, value):
        percent = super().clean(value)
        return None if percent is None else percent / HUNDRED

    def has_changed(self, initial, data):
        try:
            typed = self.clean(data)
        except forms.ValidationError:
            return True
        return initial != typed


def wide_number(**kwargs) -> forms.IntegerField:
    return forms.IntegerField(widget=forms.NumberInput(attrs={"class": "pp-number"}), **kwargs)


def percent(rate) -> str:
    """0.05 → "5%", 0.001 → "0.1%", 0.0015 → "0.15%": a rate as the operator types it."""
    text = f"{Decimal(rate) * HUNDRED:.2f}".rstrip("0").rstrip(".")
    return f"{text}%"
