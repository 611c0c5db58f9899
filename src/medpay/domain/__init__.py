"""Pure model and rules of the settlement: no I/O, no framework imports."""
