"""newsletter: write a monthly research newsletter as one YAML file per month.

The pipeline is config -> load -> model -> validate -> render -> message, then
send, archive and site; ``cli`` is a thin click layer over those modules.
"""

__version__ = "0.1.0"
