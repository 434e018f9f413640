from shop.pricing import *
from shop import units as u


def line(amount):
    return f"{amount} + tax = {with_tax(amount)}"


RATE = TAX_RATE
print(u.grams(2), u.missing)
