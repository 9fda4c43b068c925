"""Who receives an issue: subscriber lists (CSV), the subscriber store (SQLite), the public web
endpoint (`serve`) and returned-mail processing (`inbox`).  Uses `mail`, `content` and
`senders`; never `delivery` or `publish`."""

# Here rather than in store.py so that `build` can tell whether a folder has a store without
# importing the store and the address checks behind it.
STORE_FILE = "subscribers.sqlite"
