from shop import with_tax

total = with_tax(5)
