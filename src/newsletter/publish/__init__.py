"""After sending: the frozen archive of each issue and the static web site built from it.  Uses
`mail` (the templates' environment) and `content`; never `audience` or `delivery`."""
