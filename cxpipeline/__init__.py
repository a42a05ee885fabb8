"""cxpipeline: customers as assets - sales history in, a board pack per period out."""

__version__ = "0.1.0"
