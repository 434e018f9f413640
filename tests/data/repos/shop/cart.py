from .pricing import with_tax, Discount
from . import units


class Cart:
    def __init__(self):
        self.items = []

    def total(self):
        gross = sum(price for _, price in self.items)
        return with_tax(gross)

    def sale(self):
        return Discount(10)

    def weight(self):
        return units.grams(len(self.items))
