"""What a model's tokens cost: the YAML's ``pricing`` entry, else a built-in table.

A price is per million tokens: ``input`` (prompt), ``output`` (completion, reasoning included,
as Azure bills it) and, where Azure bills cached prompt tokens at a discount, ``cachedInput``;
``currency`` is an ISO 4217 code (USD unless the YAML says otherwise).

``BUILTIN_PRICES``: Azure OpenAI "Global" deployment list prices in USD per 1M tokens, from the
Azure OpenAI Service pricing page (https://azure.microsoft.com/pricing/details/cognitive-services/openai-service/)
as of 2025-08. Data-zone and regional deployments, provisioned throughput and negotiated
agreements cost differently: a model's ``pricing`` entry in the YAML always wins over this table.
A name matches only the model key or deployment name exactly (any case), optionally followed by
an Azure version date (``gpt-4o-2024-11-20``); anything else has no price, and a model without
a price shows tokens only (Lapis never guesses a cost).
"""

import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

MILLION = Decimal(1_000_000)
COST_PLACES = Decimal("0.0000000001")  # UsageRecord.cost's decimal places
CURRENCY = re.compile(r"^[A-Z]{3}$")


@dataclass(frozen=True)
class Price:
    """Per million tokens; ``cached_input`` None: cached prompt tokens cost ``input``."""

    input: Decimal
    output: Decimal
    cached_input: Decimal | None = None
    currency: str = "USD"
    source: str = "config"  # "config" or "built-in"

    def cost(self, *, prompt_tokens, completion_tokens, cached_tokens=0):
        """The Decimal cost of one call (``cached_tokens`` are part of ``prompt_tokens``)."""
        cached = min(max(cached_tokens or 0, 0), prompt_tokens)
        cached_rate = self.input if self.cached_input is None else self.cached_input
        total = (
            (prompt_tokens - cached) * self.input
            + cached * cached_rate
            + completion_tokens * self.output
        ) / MILLION
        return total.quantize(COST_PLACES, rounding=ROUND_HALF_UP)


def _price(input_, output, cached=None):
    return Price(Decimal(input_), Decimal(output), Decimal(cached) if cached else None, "USD", "built-in")


BUILTIN_PRICES = {
    "gpt-4o": _price("2.50", "10.00", "1.25"),
    "gpt-4o-mini": _price("0.15", "0.60", "0.075"),
    "gpt-4.1": _price("2.00", "8.00", "0.50"),
    "gpt-4.1-mini": _price("0.40", "1.60", "0.10"),
    "gpt-4.1-nano": _price("0.10", "0.40", "0.025"),
    "o1": _price("15.00", "60.00", "7.50"),
    "o1-mini": _price("1.10", "4.40", "0.55"),
    "o3": _price("2.00", "8.00", "0.50"),
    "o3-mini": _price("1.10", "4.40", "0.55"),
    "o4-mini": _price("1.10", "4.40", "0.275"),
    "gpt-5": _price("1.25", "10.00", "0.125"),
    "gpt-5-mini": _price("0.25", "2.00", "0.025"),
    "gpt-5-nano": _price("0.05", "0.40", "0.005"),
    "gpt-5-chat": _price("1.25", "10.00", "0.125"),
    "gpt-4-turbo": _price("10.00", "30.00"),
    "gpt-4": _price("30.00", "60.00"),
    "gpt-35-turbo": _price("0.50", "1.50"),
}
_VERSIONED = re.compile(r"^(?P<name>.+?)(?:-\d{4}-\d{2}-\d{2})?$")


def builtin_price(*names):
    """The built-in price of the first of ``names`` (model key, deployment) that is a table
    name, exactly or with a version date; else None."""
    for name in names:
        if not name:
            continue
        lowered = name.lower()
        base = _VERSIONED.match(lowered).group("name")
        for candidate in (lowered, base):
            if candidate in BUILTIN_PRICES:
                return BUILTIN_PRICES[candidate]
    return None


def format_cost(cost, currency):
    """A short display of a cost: ``$0.0123``, ``0.50 EUR`` (4 significant digits below 1)."""
    if cost is None:
        return ""
    value = Decimal(cost)
    if value == 0:
        shown = "0.00"
    elif value < 1:
        shown = f"{value:.{max(2, -value.adjusted() + 3)}f}".rstrip("0")
        shown = shown if len(shown.split(".")[1]) >= 2 else f"{value:.2f}"
    else:
        shown = f"{value:,.2f}"
    return f"${shown}" if currency == "USD" else f"{shown} {currency}"
