def alone():
    return 1


print(alone())
