"""One module per sheet kind."""
