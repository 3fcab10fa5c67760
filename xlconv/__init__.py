"""xlconv: Excel workbooks with live formulas for teaching convolutional networks."""

__version__ = "0.1.0"
