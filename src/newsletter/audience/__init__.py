"""Who receives an issue: subscriber lists (CSV today).  Uses `mail` (header folding) and
`content`; never `delivery` or `publish`."""
