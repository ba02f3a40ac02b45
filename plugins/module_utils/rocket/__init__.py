"""rocket's engine: the App Container runtime as plain Python.

This package is at once Ansible module_utils (shipped to hosts with each module), the Python package
behind the `rocket` command line, and the code a pod supervisor runs from. It imports nothing from
Ansible and uses relative imports only (see docs/DESIGN.md in the shared folder).
"""

__version__ = "0.1.0"

# The appc specification version this engine implements and writes into manifests it makes.
AC_VERSION = "0.8.11"
