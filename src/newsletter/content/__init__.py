"""What the author writes, and its validation: newsletter.yaml, the monthly issue files, citations,
addresses, the `new` scaffold and the importer of a back catalogue.  Imports nothing above it."""
