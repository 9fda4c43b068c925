"""Getting an issue to its readers: the send loop, the durable per-recipient send record and the
status of each issue.  Uses `audience`, `publish` (archiving a finished send), `mail`, `content`
and the `newsletter.senders` plug-ins."""
