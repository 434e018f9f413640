def grams(n):
    return n * 100
