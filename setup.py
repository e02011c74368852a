from setuptools import setup

setup()  # metadata in setup.cfg
