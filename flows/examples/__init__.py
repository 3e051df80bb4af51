"""Example agents and actions for the flows in this folder. Flows may only call modules
allowed by BATON_PYTHON_MODULES (default: this `examples` package)."""
