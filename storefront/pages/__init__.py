"""The shop's own pages: contact, terms, returns and privacy."""
