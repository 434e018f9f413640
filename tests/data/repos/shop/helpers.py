import os


def local():
    return os.getcwd()
