"""Dev only: the local clusters (kwok and a real node), `make up` and `make demo`.

No product package imports it; ``ferry_testing`` may.
"""
