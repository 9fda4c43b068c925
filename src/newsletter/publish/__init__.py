"""After sending: the frozen archive of each issue and the static web site built from it.  Uses
`mail` (the templates' environment) and `content`; never `audience` or `delivery`."""

DEFAULT_SITE_DIR = "site"  # here, not in site.py, so a send can look for it without importing the site builder
