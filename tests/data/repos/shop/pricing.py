TAX_RATE = 0.2


def with_tax(amount):
    return amount * (1 + TAX_RATE)


class Discount:
    def __init__(self, percent):
        self.percent = percent
